"""Detection: NMS against a NumPy reference, and every detector through the whole chain —
the MXNet model's final detections (the float reference, GluonCV semantics) reproduced by
the compiled body + the C++ decode and NMS."""

from __future__ import annotations

import numpy as np
import pytest

import edgecv
from edgecv import _runtime
from edgecv.compile import CompileOptions, compile_model
from edgecv.errors import InvalidInputError
from edgecv.runtime import DetectionResult, Predictor

from conftest import SAMPLE_IMAGE, calibrate_batchnorm, zoo_models

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("seeded_mxnet")]
# in `make test`: YOLOv3 with a MobileNet backbone (the Darknet-53 one costs 4x the time here,
# and Darknet-53 has its own parity test as a classifier), YOLOv3 with its own anchors, and
# the VGG SSD (its L2Norm layer is in no other detector), CenterNet (its own decode)
DETECTORS = zoo_models(
    "detection",
    ci=[
        "yolo3_mobilenet1.0_coco",
        "yolo3_mobilenet0.25_digits",
        "ssd_300_vgg16_atrous_voc",
        "center_net_resnet18_v1b_voc",
    ],
)
YOLO_SIZE = 320
# SSD is fully convolutional; these are the smallest sizes its extra layers accept
TEST_SIZE = {
    "ssd_300": 300,
    "ssd_512_vgg16": 512,
    "ssd_512": 256,
    "yolo3": YOLO_SIZE,
    "center_net": 128,
}


def input_size_for(name: str) -> int:
    return next(v for k, v in TEST_SIZE.items() if name.startswith(k))


def reference_nms(
    boxes, scores, ids, iou, score_threshold=0.0, topk=-1, max_det=-1, agnostic=False
):
    """Greedy NMS, written independently of the C++ one."""
    order = [
        i for i in np.argsort(-scores, kind="stable") if scores[i] > score_threshold and ids[i] >= 0
    ]
    if topk > 0:
        order = order[:topk]
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep, removed = [], set()
    for n, i in enumerate(order):
        if i in removed:
            continue
        keep.append(i)
        if 0 < max_det <= len(keep):
            break
        for j in order[n + 1 :]:
            if j in removed or (not agnostic and ids[j] != ids[i]):
                continue
            w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = w * h if w > 0 and h > 0 else 0.0
            union = area[i] + area[j] - inter
            if union > 0 and inter / union > iou:
                removed.add(j)
    return keep


def _random_boxes(n, seed, size=1000.0, extent=60.0):
    rng = np.random.RandomState(seed)
    xy = rng.uniform(-20, size, (n, 2)).astype(np.float32)
    wh = rng.uniform(0, extent, (n, 2)).astype(np.float32)
    return (
        np.concatenate([xy, xy + wh], 1),
        rng.uniform(0, 1, n).astype(np.float32),
        rng.randint(0, 5, n).astype(np.int32),
    )


@pytest.mark.cpp
@pytest.mark.parametrize(
    "n,agnostic,topk,max_det",
    [
        (0, False, -1, -1),
        (1, False, -1, -1),
        (50, False, -1, -1),
        (50, True, -1, -1),
        (3000, False, 400, 100),
        (3000, True, 400, 100),
    ],
)
def test_nms_matches_numpy(n, agnostic, topk, max_det):
    boxes, scores, ids = _random_boxes(n, seed=n)
    got_ids, got_scores, got_boxes = _runtime.nms(
        boxes, scores, ids, 0.45, 0.0, topk, max_det, agnostic
    )
    keep = reference_nms(boxes, scores, ids, 0.45, 0.0, topk, max_det, agnostic)
    np.testing.assert_array_equal(got_ids, ids[keep])
    np.testing.assert_array_equal(got_scores, scores[keep])
    np.testing.assert_array_equal(got_boxes, boxes[keep])


@pytest.mark.cpp
def test_nms_edge_cases():
    same = np.tile(np.array([[10, 10, 20, 20]], np.float32), (4, 1))
    ids = np.zeros(4, np.int32)
    out_ids, out_scores, _ = _runtime.nms(
        same, np.array([0.3, 0.9, 0.9, 0.1], np.float32), ids, 0.5
    )
    assert out_scores.tolist() == pytest.approx([0.9])  # identical boxes; the first of the tie wins
    zero = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32)
    assert (
        len(_runtime.nms(zero, np.array([0.5, 0.4], np.float32), np.zeros(2, np.int32), 0.0)[0])
        == 2
    )
    with pytest.raises(InvalidInputError, match="NaN"):
        _runtime.nms(same[:1], np.array([np.nan], np.float32), ids[:1], 0.5)
    with pytest.raises(InvalidInputError, match=r"\(N, 4\)"):
        _runtime.nms(same[:, :3], np.zeros(4, np.float32), ids, 0.5)


def _scale_conv(conv, logits, rng, target: float, bias):
    """Rescale a head conv so its logits deviate by at most ``target`` from their per-channel
    mean across positions, and replace the mean by ``bias``."""
    import mxnet as mx

    logits = logits - conv.bias.data().asnumpy()[:, None]
    mean = logits.mean(axis=1)
    spread = float(np.abs(logits - mean[:, None]).max())
    factor = min(target / spread, 100.0) if spread > 1e-3 else 1.0  # 1x1 maps do not vary
    conv.weight.set_data(conv.weight.data() * factor)
    conv.bias.set_data(mx.nd.array(bias - mean * factor))


def normalise_batchnorm(net, x) -> None:
    """Each BatchNorm's running statistics := those of its input on the batch ``x`` (one
    imperative pass, each layer set before it runs). For pre-activation (v2) backbones, whose residual
    sums no BatchNorm follows: with calibrate_batchnorm's random affine layers alone, SSD's
    ResNet-152 v2 grows its stream to 1e9 over stage 3's 36 units, and float32 noise then
    decides the scores."""
    import mxnet as mx

    def set_statistics(block, inputs):
        data = inputs[0]
        axes = (0, 2, 3) if data.ndim == 4 else (0,)
        block.running_mean.set_data(data.mean(axis=axes))
        var = mx.nd.square(data - data.mean(axis=axes, keepdims=True)).mean(axis=axes)
        # floored at a tenth of the layer's mean: a channel nearly constant on these images
        # would amplify any other image's deviation
        block.running_var.set_data(mx.nd.maximum(var, var.mean() * 0.1))

    handles = []

    def visit(block) -> None:
        if isinstance(block, mx.gluon.nn.BatchNorm):
            handles.append(block.register_forward_pre_hook(set_statistics))
        for child in block._children.values():
            visit(child)

    visit(net)
    net(x)
    for handle in handles:
        handle.detach()


def shape_head_scores(net, x, seed: int) -> None:
    """Make the reference a demanding one. Random weights give every box about the same
    score, so which boxes survive NMS would be decided by float noise. Instead, rescale the
    heads so that their logits deviate by at most 4 across positions, with objectness (YOLO)
    at -3 or background (SSD) at +2 and class biases in [-4, 4]: most candidates score near
    zero, a few hundred score well above 0.1, spread over (0.1, 1), so NMS, top-k and the
    0.1 cut all work on distinct scores. SSD box offsets are kept within ±3 (no overflow).
    CenterNet: heatmap logits within ±4 of class biases in [-3, 1] (no sigmoid saturates, so
    no two neighbours tie), box sizes of 3 to 9 cells, centre offsets within the cell."""
    rng = np.random.RandomState(seed)
    if hasattr(net, "heads"):
        features = net.base_network(x)
        classes = net.num_classes
        for head, target, bias in zip(
            net.heads,
            (4.0, 2.0, 0.5),
            (rng.uniform(-3, 1, classes), rng.uniform(5, 7, 2), np.full(2, 0.5)),
            strict=True,
        ):
            logits = head[2](head[1](head[0](features))).asnumpy()[0]
            _scale_conv(head[2], logits.reshape(logits.shape[0], -1), rng, target, bias)
        return
    if hasattr(net, "yolo_outputs"):
        net.raw_outputs = True
        raws = net(x)
        net.raw_outputs = False
        for out, raw in zip(net.yolo_outputs, raws, strict=True):
            bias = rng.uniform(-4, 4, out.prediction.bias.shape)
            bias[4 :: 5 + out.num_classes] = -3.0  # objectness of each anchor
            _scale_conv(out.prediction, raw.asnumpy()[0].reshape(raw.shape[1], -1), rng, 4.0, bias)
        return
    features = net.features(x)
    for feat, cls, box in zip(features, net.class_predictors, net.box_predictors, strict=True):
        logits = cls.predictor(feat).asnumpy()[0]
        bias = rng.uniform(-4, 4, logits.shape[0])
        bias[0 :: net.num_classes + 1] = 2.0  # background of each anchor
        _scale_conv(cls.predictor, logits.reshape(logits.shape[0], -1), rng, 4.0, bias)
        offsets = box.predictor(feat).asnumpy()[0]
        _scale_conv(
            box.predictor,
            offsets.reshape(offsets.shape[0], -1),
            rng,
            3.0,
            np.zeros(offsets.shape[0]),
        )


def _match(ref, got, min_score=0.1):
    """Every reference detection above min_score has a same-class runtime detection with
    IoU >= 0.99 and |Δscore| <= 1e-3, and no runtime detection is left over."""
    used = set()
    for cid, score, box in zip(*ref, strict=True):
        if score <= min_score:
            continue
        for j, (gid, gscore, gbox) in enumerate(zip(*got, strict=True)):
            if j in used or gid != cid or abs(gscore - score) > 1e-3:
                continue
            w = min(box[2], gbox[2]) - max(box[0], gbox[0])
            h = min(box[3], gbox[3]) - max(box[1], gbox[1])
            inter = max(w, 0) * max(h, 0)
            union = (
                (box[2] - box[0]) * (box[3] - box[1])
                + (gbox[2] - gbox[0]) * (gbox[3] - gbox[1])
                - inter
            )
            if union > 0 and inter / union >= 0.99:
                used.add(j)
                break
        else:
            raise AssertionError(f"reference detection {int(cid)} {score:.4f} {box} not reproduced")
    extra = [j for j, s in enumerate(got[1]) if s > min_score + 1e-3 and j not in used]
    assert not extra, f"{len(extra)} runtime detections have no reference counterpart"
    return len(used)


@pytest.mark.parity
@pytest.mark.parametrize("name", DETECTORS)
def test_detector_parity(name, tmp_path):
    import mxnet as mx

    net = edgecv.get_model(name)
    size = input_size_for(name)
    shape = (1, 3, size, size)
    net(mx.nd.zeros(shape))
    x = np.random.RandomState(8).uniform(-2, 2, shape).astype(np.float32)
    calibrate_batchnorm(net, mx.nd.array(x), seed=5)
    if "_v2_" in name:  # statistics of more images than x: the export checks another one
        others = np.random.RandomState(9).uniform(-2, 2, (3, *shape[1:])).astype(np.float32)
        normalise_batchnorm(net, mx.nd.array(np.concatenate([x, others])))
    shape_head_scores(net, mx.nd.array(x), seed=6)
    params = tmp_path / "w.params"
    net.save_parameters(str(params))
    art = compile_model(
        CompileOptions(
            model=name, input_size=size, pretrained=str(params), out_dir=str(tmp_path / "art")
        )
    )

    reference = edgecv.get_model(name, pretrained=params)
    ids, scores, boxes = (o.asnumpy()[0] for o in reference(mx.nd.array(x)))
    # (K, 1) ids and scores; CenterNet's, as GluonCV's, are (K,)
    ref = (ids.reshape(-1).astype(int), scores.reshape(-1), boxes)
    assert (scores > 0.1).sum() >= 20, "too few confident reference boxes to prove anything"

    got = Predictor(art).run_tensor(x)
    assert isinstance(got, DetectionResult)
    matched = _match(ref, (got.ids, got.scores, got.boxes))
    assert matched >= 20


@pytest.mark.parity
def test_detection_on_an_image_maps_boxes_back(yolo_artifact):
    """Letterboxed input: boxes come back in image pixels, inside the image."""
    p = Predictor(yolo_artifact)
    from edgecv.runtime import read_image

    image = read_image(SAMPLE_IMAGE)
    res = p.run(image, score_threshold=0.0)
    h, w = image.shape[:2]
    assert len(res.ids) > 0
    assert (res.boxes[:, [0, 2]] >= 0).all() and (res.boxes[:, [0, 2]] <= w).all()
    assert (res.boxes[:, [1, 3]] >= 0).all() and (res.boxes[:, [1, 3]] <= h).all()
    transformed, tensor, geometry = p.preprocess(image)
    sx, sy = geometry["scale"]
    assert sx == pytest.approx(sy, rel=1e-2)  # letterbox keeps the aspect ratio
    raw = p.run_tensor(tensor, score_threshold=0.0)
    ox, oy = geometry["offset"]
    mapped = (raw.boxes - [ox, oy, ox, oy]) / [sx, sy, sx, sy]
    inside = np.clip(mapped, 0, [w, h, w, h])
    np.testing.assert_allclose(res.boxes, inside, atol=1e-3)
    with pytest.raises(InvalidInputError, match="score_threshold"):
        p.run(image, score_threshold=2.0)
    few = p.run(image, score_threshold=0.0, max_detections=3)
    assert len(few.ids) == 3


@pytest.mark.parity
def test_manifest_with_wrong_output_shapes_is_refused(yolo_artifact, tmp_path):
    """A detection manifest whose head shapes disagree with its decode parameters."""
    import shutil

    from edgecv.artifact import read_manifest, seal_manifest
    from edgecv.errors import ArtifactError

    art = yolo_artifact
    bad = tmp_path / "bad"
    shutil.copytree(art, bad)
    doc = read_manifest(bad)
    doc.pop("manifest_sha256")
    doc["outputs"][0]["shape"][1] += 3  # as if the head had another class
    (bad / "manifest.json").write_text(seal_manifest(doc))
    with pytest.raises(ArtifactError, match="inconsistent with its anchors"):
        Predictor(bad)
    doc["outputs"][0]["shape"][1] -= 3
    doc["postprocess"][1]["iou_threshold"] = "high"  # wrong type
    (bad / "manifest.json").write_text(seal_manifest(doc))
    with pytest.raises(ArtifactError, match="expected number"):
        Predictor(bad)
    timings = Predictor(art).run(np.full((64, 80, 3), 128, np.uint8)).timings
    assert set(timings) == {"preprocess_ms", "inference_ms", "postprocess_ms"}
    assert timings["inference_ms"] > 0 and timings["preprocess_ms"] > 0
