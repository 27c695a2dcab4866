"""Faster R-CNN: the C++ glue between the two stage graphs (runtime_cpp/src/rcnn.cc: anchors,
proposals, RoIAlign, the second stage's per-class decode) against NumPy references written
here and against MXNet's own operators (contrib.ROIAlign, box_decode, box_nms, through the
Gluon model's methods); the Gluon model (edgecv/zoo/rcnn.py) against GluonCV's forward from the
same parameter file; and the two stages (Gluon, then exported and compiled by TVM) joined by
the C++ glue against the Gluon forward. Small maps and few RoIs (``rpn_post_nms``) keep it to
about 35 s, 20 of them the TVM build."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecv import _runtime
from edgecv.errors import ArtifactError, InvalidInputError

pytestmark = pytest.mark.cpp

mx = pytest.importorskip("mxnet")
rcnn = pytest.importorskip("edgecv.zoo.rcnn")


# ---------------------------------------------------------------- NumPy references
def reference_decode(anchors, offsets, stds=(1, 1, 1, 1), clip=-1.0):
    """Corner boxes around corner anchors: widths x2 - x1, centre moved by d * size."""
    a = anchors.astype(np.float64)
    d = offsets.astype(np.float64) * np.asarray(stds)
    w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    cx, cy = a[:, 0] + w / 2 + d[:, 0] * w, a[:, 1] + h / 2 + d[:, 1] * h
    dw, dh = (np.minimum(d[:, 2:], clip) if clip > 0 else d[:, 2:]).T
    hw, hh = np.exp(dw) * w / 2, np.exp(dh) * h / 2
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


def reference_nms(boxes, scores, threshold, topk=-1, keep=-1):
    """Greedy NMS of the topk best scoring above 0 (stable order), at most ``keep``."""
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > 0]
    order = order[:topk] if topk > 0 else order
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    for i in order:
        if keep > 0 and len(kept) == keep:
            break
        k = np.array(kept, dtype=int)
        w = np.minimum(boxes[i, 2], boxes[k, 2]) - np.maximum(boxes[i, 0], boxes[k, 0])
        h = np.minimum(boxes[i, 3], boxes[k, 3]) - np.maximum(boxes[i, 1], boxes[k, 1])
        inter = np.where((w > 0) & (h > 0), w * h, 0.0)
        union = area[i] + area[k] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        if not (iou > threshold).any():
            kept.append(int(i))
    return np.array(kept, dtype=int)


def reference_roi_align(features, rois, size, scale, sample_ratio, aligned):
    """MXNet's ROIAlign, one sample at a time."""
    _, c, h, w = features.shape
    out = np.zeros((len(rois), c, *size))
    shift = 0.5 if aligned else 0.0

    def sample(y, x):
        if y < -1 or y > h or x < -1 or x > w:
            return np.zeros(c)
        y, x = max(y, 0.0), max(x, 0.0)
        y0, x0 = int(y), int(x)
        y0, y = (h - 1, float(h - 1)) if y0 >= h - 1 else (y0, y)
        x0, x = (w - 1, float(w - 1)) if x0 >= w - 1 else (x0, x)
        y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
        ly, lx = y - y0, x - x0
        f = features[0]
        return (
            (1 - ly) * (1 - lx) * f[:, y0, x0]
            + (1 - ly) * lx * f[:, y0, x1]
            + ly * (1 - lx) * f[:, y1, x0]
            + ly * lx * f[:, y1, x1]
        )

    for r, (x1, y1, x2, y2) in enumerate(rois.astype(np.float64)):
        sx, sy = x1 * scale - shift, y1 * scale - shift
        rw, rh = x2 * scale - shift - sx, y2 * scale - shift - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / size[0], rw / size[1]
        gh = sample_ratio if sample_ratio > 0 else int(np.ceil(rh / size[0]))
        gw = sample_ratio if sample_ratio > 0 else int(np.ceil(rw / size[1]))
        for i in range(size[0]):
            for j in range(size[1]):
                total = sum(
                    sample(sy + i * bh + (iy + 0.5) * bh / gh, sx + j * bw + (ix + 0.5) * bw / gw)
                    for iy in range(gh)
                    for ix in range(gw)
                )
                out[r, :, i, j] = total / max(gh * gw, 1)
    return out


def assert_same_detections(got, want, atol, score_atol=1e-5):
    """(ids, scores, boxes) equal as sets: each expected detection matched by one of the same
    class, score within ``score_atol`` and box within ``atol`` (near ties may swap places)."""
    g_ids, g_scores, g_boxes = (np.asarray(a) for a in got)
    w_ids, w_scores, w_boxes = (np.asarray(a) for a in want)
    assert len(g_ids) == len(w_ids), f"{len(g_ids)} detections, expected {len(w_ids)}"
    free = np.ones(len(g_ids), dtype=bool)
    for i in range(len(w_ids)):
        ok = free & (g_ids == w_ids[i]) & (np.abs(g_scores - w_scores[i]) <= score_atol)
        ok &= np.abs(g_boxes - w_boxes[i]).max(axis=1, initial=0) <= atol
        assert ok.any(), f"expected detection {i} ({w_ids[i]}, {w_scores[i]}, {w_boxes[i]}) missing"
        free[np.argmax(ok)] = False


def _gluon_detections(ids, scores, boxes, drop_padding=False):
    """GluonCV's (1, N, 1), (1, N, 1), (1, N, 4) → the valid rows; ``drop_padding``: also
    the zero-size boxes at (-1, -1) of the padding RoIs."""
    ids, scores, boxes = ids.asnumpy().ravel(), scores.asnumpy().ravel(), boxes.asnumpy()[0]
    keep = ids >= 0
    if drop_padding:
        keep &= ~(boxes == -1).all(axis=1)
    return ids[keep].astype(np.int32), scores[keep], boxes[keep]


# ---------------------------------------------------------------- anchors
@pytest.mark.parametrize(
    "stride, base_size, scales, ratios",
    [(16, 16, (2, 4, 8, 16, 32), (0.5, 1, 2)), (16, 16, (8, 16, 32), (0.5, 1, 2)), (8, 12, (1, 3), (0.3, 1.7))],
)  # fmt: skip
def test_anchors_match_gluon_and_gluoncv(stride, base_size, scales, ratios):
    got = _runtime.rpn_anchors(stride, base_size, scales, ratios, 3, 5)
    want = rcnn.grid_anchors(stride, base_size, scales, ratios, 3, 5).reshape(-1, 4)
    np.testing.assert_array_equal(got, want)
    pytest.importorskip("gluoncv")
    from gluoncv.model_zoo.rcnn.rpn.anchor import RPNAnchorGenerator

    theirs = RPNAnchorGenerator(stride, base_size, list(ratios), list(scales), (3, 5))
    theirs.initialize()
    np.testing.assert_array_equal(got, theirs.anchors.data().asnumpy().reshape(-1, 4))


# ---------------------------------------------------------------- RoIAlign
_ROIS = np.array(
    [
        [0, 0, 50, 40],  # inside
        [-30, -20, 20, 120],  # over the top-left border
        [10, 10, 10.5, 10.2],  # smaller than a cell
        [90, 80, 200, 150],  # past the bottom-right, partly beyond one cell
        [-1, -1, -1, -1],  # GluonCV's padding RoI
        [33.3, 17.1, 64.2, 90.9],
        [120, 100, 130, 110],  # entirely outside
    ],
    np.float32,
)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sample_ratio", [2, 1, 0])
def test_roi_align_matches_numpy_and_mxnet(aligned, sample_ratio):
    rng = np.random.RandomState(sample_ratio)
    features = rng.randn(1, 3, 6, 7).astype(np.float32)
    # MXNet refuses zero-size RoIs when aligned ("roi_width > 0")
    rois = _ROIS[(_ROIS[:, 2] > _ROIS[:, 0])] if aligned else _ROIS
    got = _runtime.roi_align(features, rois, (4, 3), 1 / 16, sample_ratio, aligned)
    want = reference_roi_align(features, rois, (4, 3), 1 / 16, sample_ratio, aligned)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    indexed = mx.nd.array(np.concatenate([np.zeros((len(rois), 1), np.float32), rois], 1))
    theirs = mx.nd.contrib.ROIAlign(
        mx.nd.array(features), indexed, (4, 3), 1 / 16, sample_ratio=sample_ratio, aligned=aligned
    )
    np.testing.assert_allclose(got, theirs.asnumpy(), rtol=0, atol=2e-6)


def test_roi_align_pads_and_refuses_bad_input():
    features = np.ones((1, 2, 4, 4), np.float32)
    inside = np.array([[0, 0, 50, 40], [10, 10, 30, 30]], np.float32)
    out = _runtime.roi_align(features, inside, (2, 2), 1 / 16, 2, False, rows=5)
    assert out.shape == (5, 2, 2, 2) and (out[2:] == 0).all() and (out[:2] == 1).all()
    with pytest.raises(InvalidInputError, match="do not fit"):
        _runtime.roi_align(features, _ROIS, (2, 2), 1 / 16, 2, False, rows=3)
    with pytest.raises(InvalidInputError, match=r"features have shape"):
        _runtime.roi_align(np.ones((2, 2, 4, 4), np.float32), _ROIS, (2, 2))
    with pytest.raises(InvalidInputError, match=r"\(N, 4\)"):
        _runtime.roi_align(features, np.ones((3, 5), np.float32), (2, 2))


# ---------------------------------------------------------------- proposals
def _rpn_maps(seed, h, w, a=15):
    rng = np.random.RandomState(seed)
    scores = rng.uniform(0, 1, (1, a, h, w)).astype(np.float32)
    offsets = rng.normal(0, 0.5, (1, 4 * a, h, w)).astype(np.float32)
    return scores, offsets


@pytest.mark.parametrize("dataset", ["voc", "coco"])
def test_rpn_proposals_match_numpy_and_mxnet(dataset):
    """C++ proposals = the NumPy reference = the Gluon model's (MXNet box_decode + box_nms),
    with GluonCV's settings and fewer RoIs, on a 6x7 map for a 96x112 image."""
    c = rcnn.CONFIGS[dataset]
    post = 50
    scores, offsets = _rpn_maps(7, 6, 7)
    if dataset == "coco":
        offsets[0, 2, 0, 0] = 9.0  # a log-size offset past box_clip (4.14)
    clip = c.box_clip if c.box_clip is not None else -1.0
    ids, got_scores, got_boxes = _runtime.rpn_proposals(
        scores, offsets, 112, 96, pre_nms=c.rpn_pre_nms, post_nms=post,
        nms_threshold=c.rpn_nms_threshold, min_size=c.rpn_min_size, box_clip=clip,
    )  # fmt: skip
    n = len(ids)
    assert 10 < n <= post and (ids == 0).all()
    # NumPy
    anchors = rcnn.grid_anchors(16, c.base_size, c.scales, c.ratios, 6, 7).reshape(-1, 4)
    flat_scores = scores[0].transpose(1, 2, 0).ravel()
    flat_offsets = offsets[0].reshape(15, 4, 6, 7).transpose(2, 3, 0, 1).reshape(-1, 4)
    boxes = reference_decode(anchors, flat_offsets, clip=clip)
    boxes = np.minimum(np.maximum(boxes, 0), [112, 96, 112, 96])
    small = ((boxes[:, 2:] - boxes[:, :2] + 1) < c.rpn_min_size).any(axis=1)
    flat_scores = np.where(small, -1, flat_scores)
    kept = reference_nms(boxes, flat_scores, c.rpn_nms_threshold, c.rpn_pre_nms, post)
    assert len(kept) == n
    np.testing.assert_array_equal(got_scores, flat_scores[kept])
    np.testing.assert_allclose(got_boxes, boxes[kept], rtol=0, atol=1e-3)
    # MXNet's operators, as the Gluon model calls them
    net = rcnn.faster_rcnn(dataset, rpn_post_nms=post)
    anchors_nd = mx.nd.array(anchors.reshape(1, -1, 4))
    image = mx.nd.zeros((1, 3, 96, 112))
    rois = net.proposals(mx.nd, mx.nd.array(scores), mx.nd.array(offsets), anchors_nd, image)
    rois = rois.asnumpy()[0]
    np.testing.assert_allclose(got_boxes, rois[:n], rtol=0, atol=1e-3)
    assert (rois[n:] == -1).all()  # GluonCV pads to post_nms


def test_rpn_proposals_fewer_than_post_nms_and_bad_input():
    scores, offsets = _rpn_maps(3, 2, 2)
    _, s, _ = _runtime.rpn_proposals(scores, offsets, 32, 32, min_size=1, post_nms=300)
    assert 0 < len(s) < 60 and (np.diff(s) <= 0).all()  # all that survive, best first
    with pytest.raises(InvalidInputError, match="scores have shape"):
        _runtime.rpn_proposals(scores[:, :9], offsets, 32, 32)
    scores[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        _runtime.rpn_proposals(scores, offsets, 32, 32)


# ---------------------------------------------------------------- second stage
@pytest.mark.parametrize("dataset", ["voc", "coco"])
def test_decode_rcnn_and_nms_match_numpy_and_mxnet(dataset):
    """Per-class decode + the runtime's NMS = GluonCV's per-class box_decode + box_nms (the
    Gluon model's ``detections``) = the NumPy reference, on 40 RoIs and 5 classes."""
    c = rcnn.CONFIGS[dataset]
    classes, r = 5, 40
    rng = np.random.RandomState(11)
    xy = rng.uniform(0, 200, (r, 2))
    rois = np.concatenate([xy, xy + rng.uniform(4, 80, (r, 2))], 1).astype(np.float32)
    logits = rng.normal(0, 2, (r, classes + 1))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    offsets = rng.normal(0, 1, (r, 4 * classes)).astype(np.float32)
    offsets[0, 2] = 40.0  # exp(8): past COCO's clip
    clip = c.box_clip if c.box_clip is not None else -1.0
    cand = _runtime.decode_rcnn(probs, offsets, rois, classes, box_clip=clip, topk=c.nms_topk)
    got = _runtime.nms(cand[2], cand[1], cand[0], iou_threshold=c.nms_threshold)
    # NumPy
    want = ([], [], [])
    for k in range(classes):
        boxes = reference_decode(rois, offsets[:, 4 * k : 4 * k + 4], rcnn.BOX_STDS, clip)
        scores = np.where(probs[:, k + 1] > 0.01, probs[:, k + 1], 0)
        kept = reference_nms(boxes, scores, c.nms_threshold, c.nms_topk)
        want[0].extend([k] * len(kept))
        want[1].extend(scores[kept])
        want[2].extend(boxes[kept])
    want = tuple(np.array(w) for w in want)
    assert_same_detections(got, want, atol=2e-3)
    # MXNet
    net = rcnn.faster_rcnn(dataset, classes=classes)
    theirs = net.detections(
        mx.nd, mx.nd.array(probs), mx.nd.array(offsets), mx.nd.array(rois[None])
    )
    assert_same_detections(got, _gluon_detections(*theirs), atol=2e-3)


def test_decode_rcnn_ignores_padding_and_refuses_bad_input():
    probs = np.full((4, 3), 1 / 3, np.float32)
    offsets = np.zeros((4, 8), np.float32)
    rois = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32)  # rows 2, 3: padding
    ids, _, boxes = _runtime.decode_rcnn(probs, offsets, rois, 2)
    assert len(ids) == 4 and set(map(tuple, boxes)) == {(0, 0, 10, 10), (5, 5, 20, 20)}
    with pytest.raises(InvalidInputError, match="class probabilities have shape"):
        _runtime.decode_rcnn(probs, offsets, rois, 3)
    with pytest.raises(InvalidInputError, match="RoIs for"):
        _runtime.decode_rcnn(probs[:1], offsets[:1], rois, 2)
    probs[1, 1] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        _runtime.decode_rcnn(probs, offsets, rois, 2)


# ---------------------------------------------------------------- the model
_ROI_COUNT = 12  # RoIs per image in the model tests (GluonCV: 300 VOC, 1000 COCO)


def _gluoncv_pair(tmp_path, name="faster_rcnn_resnet50_v1b_voc"):
    """GluonCV's model with random weights (its RoIs cut to _ROI_COUNT), ours from its file."""
    gluoncv = pytest.importorskip("gluoncv")
    from conftest import randomize_weights

    ref = gluoncv.model_zoo.get_model(name, pretrained_base=False)
    ref.rpn._test_post_nms = ref._rpn_test_post_nms = _ROI_COUNT
    ref.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (1, 3, 128, 144)))
    ref(x)
    randomize_weights(ref, seed=3)
    path = tmp_path / f"{name}.params"
    ref.save_parameters(str(path))
    net = rcnn.faster_rcnn(name.rsplit("_", 1)[1], rpn_post_nms=_ROI_COUNT)
    net.load_parameters(str(path))
    return ref, net, x


@pytest.mark.parity
@pytest.mark.usefixtures("seeded_mxnet")
def test_gluoncv_params_load_and_agree(tmp_path):
    """Same parameter file, same detections as GluonCV's forward (128x144 image, 12 RoIs)."""
    ref, net, x = _gluoncv_pair(tmp_path)
    want, got = ref(x), net(x)
    assert got[0].shape == want[0].shape == (1, 20 * _ROI_COUNT, 1)
    expected = _gluon_detections(*want)
    assert len(expected[0]) > 20  # random weights still give many per-class candidates
    assert_same_detections(_gluon_detections(*got), expected, atol=1e-3)
    np.testing.assert_array_equal(
        net.rpn.anchor_generator.anchors.data().asnumpy(),
        ref.rpn.anchor_generator.anchors.data().asnumpy(),
    )


@pytest.mark.parity
@pytest.mark.usefixtures("seeded_mxnet")
def test_stages_joined_by_cpp_glue_reproduce_the_forward(tmp_path):
    """Stage 1 (Gluon) → C++ proposals → C++ RoIAlign into a fixed batch of R → stage 2
    (Gluon) → C++ decode + NMS: GluonCV's detections, less its padding RoIs' zero-size
    boxes at (-1, -1). This is the deployed pipeline with MXNet in place of the compiled
    graphs."""
    ref, net, x = _gluoncv_pair(tmp_path)
    c = net.config
    stage1, stage2 = net.stages()
    features, scores, offsets = (o.asnumpy() for o in stage1(x))
    _, _, rois = _runtime.rpn_proposals(
        scores, offsets, x.shape[3], x.shape[2], pre_nms=c.rpn_pre_nms, post_nms=c.rpn_post_nms,
        nms_threshold=c.rpn_nms_threshold, min_size=c.rpn_min_size,
    )  # fmt: skip
    pooled = _runtime.roi_align(features, rois, (c.roi_size,) * 2, 1 / 16, 2, rows=c.rpn_post_nms)
    probs, box_offsets = (o.asnumpy() for o in stage2(mx.nd.array(pooled)))
    cand = _runtime.decode_rcnn(probs, box_offsets, rois, c.classes, topk=c.nms_topk)
    got = _runtime.nms(cand[2], cand[1], cand[0], iou_threshold=c.nms_threshold)
    assert_same_detections(got, _gluon_detections(*ref(x), drop_padding=True), atol=1e-3)


@pytest.mark.parity
@pytest.mark.usefixtures("seeded_mxnet")
def test_detect_two_stage_in_chunks_reproduces_the_forward(tmp_path):
    """The runtime's own glue (DetectTwoStage, configured by the model's manifest ops) with
    the Gluon stage 2 run on chunks of 5 RoIs (12 RoIs: three runs, the last padded):
    GluonCV's detections less its padding RoIs' boxes. Then the errors: no proposal (no
    stage-2 run), a stage 2 of another class count, NaN from stage 2."""
    ref, net, x = _gluoncv_pair(tmp_path)
    stage1, stage2 = net.stages()
    outputs = [o.asnumpy() for o in stage1(x)]
    ops = json.dumps(net.deploy_ops())
    runs = []

    def head(pooled):
        runs.append(pooled.shape)
        return [o.asnumpy() for o in stage2(mx.nd.array(pooled))]

    got = _runtime.detect_two_stage(outputs, x.shape[3], x.shape[2], 5, head, ops)
    assert runs == [(5, 1024, 14, 14)] * 3
    assert_same_detections(got, _gluon_detections(*ref(x), drop_padding=True), atol=1e-3)

    runs.clear()
    none = [outputs[0], np.zeros_like(outputs[1]), outputs[2]]
    assert len(_runtime.detect_two_stage(none, x.shape[3], x.shape[2], 5, head, ops)[0]) == 0
    assert not runs
    with pytest.raises(ArtifactError, match="stage 2 must return"):
        _runtime.detect_two_stage(
            outputs, x.shape[3], x.shape[2], 5, lambda p: [o[:, :11] for o in head(p)], ops
        )
    with pytest.raises(InvalidInputError, match="NaN"):
        _runtime.detect_two_stage(
            outputs, x.shape[3], x.shape[2], 5, lambda p: [o * np.nan for o in head(p)], ops
        )


@pytest.mark.integration
@pytest.mark.usefixtures("seeded_mxnet")
@pytest.mark.filterwarnings("ignore:Parameter .*anchors is not used")  # the proposals' constant
def test_compiled_stages_with_cpp_glue_reproduce_the_forward(tmp_path):
    """The deployable pipeline: both stage graphs exported (ONNX Runtime checked against
    MXNet by export_onnx) and compiled by edgecv's TVM build (static shapes: 96x96 image,
    stage-2 batch 4), run by the C++ engine with the C++ glue between them (8 RoIs: two
    stage-2 runs): the Gluon forward's detections, less its padding RoIs' boxes."""
    from edgecv.compile.build import run_network
    from edgecv.compile.options import choose_kernels
    from edgecv.compile.tvm_process import build_library
    from edgecv.export import export_onnx
    from edgecv.targets import resolve_target

    from conftest import randomize_weights

    size, batch = 96, 4
    net = rcnn.faster_rcnn("voc", rpn_post_nms=8)
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (1, 3, size, size)))
    net(x)
    randomize_weights(net, seed=3)
    stages = dict(zip(("stage1", "stage2"), net.stages(), strict=True))
    shapes = {"stage1": (1, 3, size, size), "stage2": (batch, 1024, 14, 14)}
    target = resolve_target("x86_64")
    kernels = choose_kernels("auto", target)
    params = {}
    for name, block in stages.items():
        export_onnx(block, tmp_path / f"{name}.onnx", shapes[name])
        params[name], _ = build_library(
            tmp_path / f"{name}.onnx", target.tvm, tmp_path / f"{name}.so",
            tmp_path / f"{name}.weights", target.linker, kernels,
        )  # fmt: skip

    def run(name, a):
        lib, weights = tmp_path / f"{name}.so", tmp_path / f"{name}.weights"
        return run_network(lib, weights, params[name], np.ascontiguousarray(a, np.float32))

    stage1 = run("stage1", x.asnumpy())
    assert [o.shape for o in stage1] == [(1, 1024, 6, 6), (1, 15, 6, 6), (1, 60, 6, 6)]
    runs = []

    def stage2(pooled):
        runs.append(pooled.shape)
        return run("stage2", pooled)

    ops = json.dumps(net.deploy_ops())
    got = _runtime.detect_two_stage(stage1, size, size, batch, stage2, ops)
    assert runs == [(batch, 1024, 14, 14)] * 2
    want = _gluon_detections(*net(x), drop_padding=True)
    assert len(want[0]) > 10
    assert_same_detections(got, want, atol=1e-3, score_atol=1e-4)
