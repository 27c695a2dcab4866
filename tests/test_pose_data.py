"""Pose data end to end: the COCO keypoints loader, the digits keypoint set, training
targets that agree with the runtime's crop and decode, a short training run, evaluation."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from edgecv.datasets import COCODetection, open_dataset
from edgecv.datasets.digits import KEYPOINTS, ink_keypoints, load_scans, render_scene
from edgecv.datasets.keypoints import UNIFORM_SIGMA, COCOKeypoints, default_sigmas
from edgecv.datasets.segmentation import voc_palette
from edgecv.errors import InvalidInputError
from edgecv.evaluate import COCO_KEYPOINT_SIGMAS, evaluate
from edgecv.train.pose import crop_transform, flip_pairs, heatmap_targets
from edgecv.zoo import label_set

pytestmark = pytest.mark.unit

# ------------------------------------------------------------------ the digits keypoints

# ink of a hand-drawn 5x7 glyph; its extreme points and centroid counted by hand below
GLYPH = """
..XX...
.XXXX..
XX..XXX
.X..XXX
..XXX..
"""


def _glyph_mask(x0: int, y0: int, size: int = 40) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    rows = GLYPH.split()
    for y, row in enumerate(rows):
        for x, c in enumerate(row):
            mask[y0 + y, x0 + x] = c == "X"
    return mask


def test_ink_keypoints_hand_checked():
    got = ink_keypoints(_glyph_mask(10, 20))
    # top row: columns 2, 3 (tie → 2.5); bottom row: 2, 3, 4; left column 0: row 2 only;
    # right column 6: rows 2 and 3; 18 pixels, x sum 56, y sum 38
    expected = np.array([[2.5, 0], [3, 4], [0, 2], [6, 2.5], [56 / 18, 38 / 18]]) + [10, 20]
    np.testing.assert_allclose(got, expected)
    # a mirrored glyph gives mirrored points, left and right trading places
    mirrored = ink_keypoints(_glyph_mask(10, 20)[:, ::-1])
    swap = [0, 1, 3, 2, 4]
    np.testing.assert_allclose(mirrored[:, 0], 39 - got[swap, 0])
    np.testing.assert_allclose(mirrored[:, 1], got[swap, 1])
    with pytest.raises(InvalidInputError, match="no ink"):
        ink_keypoints(np.zeros((4, 4), bool))


def test_render_scene_masks_match_labels():
    scans = load_scans()
    rng = np.random.RandomState(5)
    for _ in range(5):
        _, label, seg, masks = render_scene(scans, rng)
        assert masks.shape == (len(label), 128, 128) and len(label) >= 1
        assert np.array_equal(masks.any(axis=0), seg > 0)
        for row, mask in zip(label, masks, strict=True):
            ys, xs = np.nonzero(mask)
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == row[:4].tolist()
            assert np.all(seg[mask] == row[4] + 1)


def test_digits_keypoint_files(digits_root):
    root = digits_root / "coco"
    for split in ("train", "val"):
        people = COCOKeypoints(root, split)
        boxes = COCODetection(root, split)
        assert people.classes == KEYPOINTS and people.category == "digit"
        assert people.skeleton == ((0, 4), (1, 4), (2, 4), (3, 4))
        np.testing.assert_array_equal(people.sigmas, np.full(5, UNIFORM_SIGMA))
        assert len(people) == len(boxes) == {"train": 48, "val": 16}[split]
        for a, b in zip(people.labels(), boxes.labels(), strict=True):
            np.testing.assert_array_equal(a.boxes, b[:, :4])
            assert not a.ignore.any() and np.all(a.keypoints[:, :, 2] == 2)
    # the keypoints again, from the ink of the (lossless) segmentation PNGs of the VOC copy
    palette = voc_palette()
    val = COCOKeypoints(root, "val")
    for i in range(len(val)):
        stem = val.images[i]["file_name"].rsplit(".", 1)[0]
        rgb = cv2.imread(str(digits_root / "voc" / "SegmentationClass" / f"{stem}.png"))[..., ::-1]
        ink = np.any(rgb != palette[0], axis=2)
        label = val.labels()[i]
        for box, kps, area in zip(label.boxes, label.keypoints, label.areas, strict=True):
            x0, y0, x1, y1 = box.astype(int)
            mask = np.zeros_like(ink)
            mask[y0:y1, x0:x1] = ink[y0:y1, x0:x1]  # boxes do not overlap
            assert area == mask.sum()
            np.testing.assert_allclose(kps[:, :2], ink_keypoints(mask), atol=0.006)


# ------------------------------------------------------------------ the COCO keypoints loader


def _tiny(tmp_path, **category):
    """A hand-written COCO keypoints set: 2 images (one without people), 3 keypoints."""
    root = tmp_path / "tiny"
    (root / "images" / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(root / "images" / "val" / name), np.full((30, 40, 3), 90, np.uint8))
    kps = [5, 6, 2, 30, 7, 1, 0, 0, 0]
    doc = {
        "images": [{"id": 7, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        "categories": [
            {
                "id": 3,
                "name": "thing",
                "keypoints": ["left_end", "right_end", "tip"],
                "skeleton": [[1, 3], [2, 3]],
                **category,
            },
            {"id": 4, "name": "other"},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [4, 5, 30, 20], "area": 300,
             "iscrowd": 0, "num_keypoints": 2, "keypoints": kps},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 10, 10], "area": 80,
             "iscrowd": 1, "num_keypoints": 0, "keypoints": [0] * 9},
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [1, 1, 8, 8], "area": 50,
             "iscrowd": 0, "num_keypoints": 0, "keypoints": [0] * 9},
            {"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 1, 0, 8], "area": 0,
             "iscrowd": 0, "num_keypoints": 1, "keypoints": [1, 1, 2] + [0] * 6},
            {"id": 5, "image_id": 7, "category_id": 4, "bbox": [1, 1, 5, 5]},
        ],
    }  # fmt: skip
    (root / "annotations" / "person_keypoints_val.json").write_text(json.dumps(doc))
    return root, doc


def test_coco_keypoints_hand_written(tmp_path):
    root, _ = _tiny(tmp_path)
    data = open_dataset(root, "val", "pose")
    assert isinstance(data, COCOKeypoints) and data.task == "pose"
    assert data.classes == ("left_end", "right_end", "tip") and data.skeleton == ((0, 2), (1, 2))
    np.testing.assert_array_equal(data.sigmas, [UNIFORM_SIGMA] * 3)
    assert [im["id"] for im in data.images] == [2, 7]  # by id, as COCODetection
    image, empty = data[0]
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert empty.boxes.shape == (0, 4) and empty.keypoints.shape == (0, 3, 3)
    _, label = data[1]
    # the box without area is dropped; the crowd one and the unlabelled one are kept, ignored
    np.testing.assert_array_equal(label.boxes, [[4, 5, 34, 25], [0, 0, 10, 10], [1, 1, 9, 9]])
    np.testing.assert_array_equal(label.ignore, [False, True, True])
    np.testing.assert_array_equal(label.areas, [300, 80, 50])
    kept = label.kept()
    assert len(kept) == 1
    np.testing.assert_array_equal(kept.keypoints[0], [[5, 6, 2], [30, 7, 1], [0, 0, 0]])
    label.boxes[0, 0] = -1  # a copy: the dataset is unchanged
    assert data.labels()[1].boxes[0, 0] == 4

    given, _ = _tiny(tmp_path / "s", sigmas=[0.1, 0.2, 0.3])
    np.testing.assert_array_equal(COCOKeypoints(given, "val").sigmas, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(default_sigmas(label_set("coco_keypoints")), COCO_KEYPOINT_SIGMAS)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(images="x"), "not a COCO keypoints file"),
        (lambda d: d["images"][0].pop("file_name"), "image 7 has no 'file_name'"),
        (lambda d: d["categories"][0].pop("keypoints"), "no category lists keypoint names"),
        (lambda d: d["categories"][1].update(keypoints=["a"]), "edgecv reads one"),
        (lambda d: d["categories"][0].update(skeleton=[[1, 4]]), r"skeleton pair \[1, 4\]"),
        (lambda d: d["categories"][0].update(sigmas=[0.1, 0]), "'sigmas' must be 3 positive"),
        (lambda d: d["annotations"][0].update(image_id=99), "annotation 1 names an unknown image"),
        (lambda d: d["annotations"][1].update(keypoints=[1, 2]), "annotation 2: 'keypoints' must be 9"),
        (lambda d: d["annotations"][2].pop("bbox"), "annotation 3 has no 'bbox'"),
        (lambda d: d["annotations"][0].update(bbox=[1, "a", 2, 3]), "annotation 1: 'bbox' must"),
    ],
)  # fmt: skip
def test_coco_keypoints_rejects_broken_files(tmp_path, change, message):
    root, doc = _tiny(tmp_path)
    change(doc)
    (root / "annotations" / "person_keypoints_val.json").write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError, match=message) as err:
        COCOKeypoints(root, "val")
    assert "person_keypoints_val.json" in str(err.value)


def test_coco_keypoints_layout_errors(tmp_path):
    root, _ = _tiny(tmp_path)
    with pytest.raises(InvalidInputError, match="keypoints file not found"):
        COCOKeypoints(root, "train")
    (root / "annotations" / "person_keypoints_val.json").write_text("{")
    with pytest.raises(InvalidInputError, match="not a COCO keypoints file"):
        COCOKeypoints(root, "val")
    root, _ = _tiny(tmp_path / "b")
    shutil.rmtree(root / "images")
    with pytest.raises(InvalidInputError, match="image folder not found"):
        COCOKeypoints(root, "val")


class _Oracle:
    """A pose model that answers the ground truth of each box (plus ``shift`` pixels)."""

    task = "pose"

    def __init__(self, dataset, shift: float = 0.0):
        self.classes = dataset.classes
        self.truth = {
            tuple(b): kp[:, :2] + shift
            for lab in dataset.labels()
            for b, kp in zip(lab.boxes, lab.keypoints, strict=True)
        }
        self.asked = 0

    def pose(self, image, boxes):
        self.asked += len(boxes)
        kps = [self.truth[tuple(b)] for b in np.asarray(boxes)]
        return np.array(kps).reshape(-1, len(self.classes), 2), np.ones((len(kps), 3))


def test_evaluate_pose_uses_the_annotated_boxes(tmp_path):
    root, _ = _tiny(tmp_path)
    data = COCOKeypoints(root, "val")
    oracle = _Oracle(data)
    report = evaluate(oracle, data)
    assert oracle.asked == 1  # the crowd and the unlabelled person are not posed
    assert report["people"] == 1 and report["images"] == 2
    assert report["keypoint_ap"] == pytest.approx(1.0)
    # 3 px off on a 300 px² person, σ 0.05: OKS = exp(-18 / (0.01 * 300) / 2) ≈ 0.05
    off = evaluate(_Oracle(data, shift=3.0), data)
    assert off["keypoint_ap"] == pytest.approx(0.0) and off["keypoint_ap50"] == 0.0
    with pytest.raises(InvalidInputError, match="no person with labelled keypoints"):
        evaluate(oracle, data, limit=1)


# ------------------------------------------------------------------ training targets


def test_heatmap_target_peak_at_keypoint():
    points = np.array([[5.0, 7.0], [5.3, 7.6], [4.0, 4.0], [12.4, 3.0]])
    maps, weights = heatmap_targets(points, np.array([2, 2, 0, 1]), (16, 12), sigma=2.0)
    assert maps.shape == (4, 16, 12) and maps.dtype == np.float32
    np.testing.assert_array_equal(weights, [1, 1, 0, 0])  # unlabelled; outside the grid
    assert maps[0, 7, 5] == 1.0 and np.unravel_index(maps[0].argmax(), (16, 12)) == (7, 5)
    assert np.unravel_index(maps[1].argmax(), (16, 12)) == (8, 5)  # nearest pixel
    ys, xs = np.mgrid[:16, :12]
    centroid = [(maps[1] * xs).sum() / maps[1].sum(), (maps[1] * ys).sum() / maps[1].sum()]
    np.testing.assert_allclose(centroid, [5.3, 7.6], atol=0.02)
    assert maps[2].max() == 0 and maps[3].max() == 0
    # σ = 2: one pixel away along x, exp(-1/8)
    assert maps[0, 7, 6] == pytest.approx(np.exp(-1 / 8), rel=1e-6)


@pytest.mark.cpp
def test_training_crop_agrees_with_the_runtime():
    """Without jitter, the training crop is the runtime's crop, and the runtime's decode
    of the target heatmaps gives back the keypoints."""
    from edgecv import _runtime

    rng = np.random.RandomState(0)
    coarse = rng.uniform(0, 255, (9, 12, 3)).astype(np.float32)
    # smooth: OpenCV's 5-bit sampling weights are off by up to 1/64 pixel
    image = cv2.resize(coarse, (120, 90), interpolation=cv2.INTER_CUBIC).clip(0, 255)
    image = image.round().astype(np.uint8)
    box = [30.0, 12.0, 70.0, 80.0]
    size = (128, 96)
    crop = _runtime.person_crop(box, size[1], size[0], 1.25, 120, 90)
    m = crop_transform(crop, size)
    warped = cv2.warpAffine(image, m, (size[1], size[0]), flags=cv2.INTER_LINEAR)
    runtime = _runtime.crop_resize(image, list(crop), size[1], size[0])
    assert np.abs(warped.astype(int) - runtime.astype(int)).max() <= 2

    keypoints = np.array([[40.0, 20.0], [55.5, 47.25], [68.0, 79.0], [31.0, 60.0]])
    network = keypoints @ m[:, :2].T + m[:, 2]
    maps, _ = heatmap_targets(network / 4, np.full(4, 2), (32, 24))
    decoded, peaks = _runtime.decode_heatmaps(maps[None], list(crop))
    # the decode's grid: a quarter heatmap pixel of 4 input pixels of the crop's scale
    step = crop[2] / 24
    assert np.abs(decoded - keypoints).max() <= 0.5 * step + 1e-4
    assert np.all(peaks > 0.9)

    # mirrored: input column u shows what column 95 - u showed
    flipped = crop_transform(crop, size, flip=True)
    np.testing.assert_allclose(flipped[0], [-m[0, 0], -m[0, 1], size[1] - 1 - m[0, 2]])
    np.testing.assert_allclose(flipped[1], m[1])
    assert flip_pairs(KEYPOINTS) == [(2, 3)]
    assert len(flip_pairs(label_set("coco_keypoints"))) == 8 and flip_pairs(["a", "b"]) == []


# ------------------------------------------------------------------ training and evaluation

MODEL = "simple_pose_resnet18_v1b"


@pytest.mark.integration
@pytest.mark.usefixtures("seeded_mxnet")
def test_pose_samples_mirror_with_swapped_joints(digits_root):
    import edgecv
    from edgecv import _runtime
    from edgecv.train import TrainConfig
    from edgecv.train.pose import PoseTask
    from edgecv.zoo import MODELS, ModelMeta

    data = COCOKeypoints(digits_root / "coco", "val")
    spec = MODELS.get(MODEL)
    net = edgecv.get_model(MODEL, pretrained=False, classes=list(data.classes))
    with pytest.raises(InvalidInputError, match="multiples of 32"):
        PoseTask(net, data, TrainConfig(), spec.data.scaled(64))  # 64x48
    cfg = TrainConfig(extra={"scale_jitter": 0.0, "rotation": 0.0})
    net.edgecv_meta = ModelMeta(spec, spec.data.scaled(128), data.classes)
    task = PoseTask(net, data, cfg, spec.data.scaled(128))
    assert task.heatmap_size == (32, 24) and task.flip_pairs == [(2, 3)]
    image, label = data[0]
    box, kps = label.boxes[0], label.keypoints[0]
    task.flip_pairs = None
    plain = task.sample(image, box, kps, np.random.RandomState(0))
    task.flip_pairs = [(2, 3)]
    crop = _runtime.person_crop(box.tolist(), 96, 128, 1.25, 128, 128)
    m = crop_transform(crop, (128, 96), flip=True)
    swapped = (kps[:, :2] @ m[:, :2].T + m[:, 2])[[0, 1, 3, 2, 4]] / 4
    seen = set()
    for seed in range(8):
        x, maps, weights = task.sample(image, box, kps, np.random.RandomState(seed))
        mirrored = np.abs(x - plain[0][:, :, ::-1]).max() < 0.1
        if mirrored:
            expected, _ = heatmap_targets(swapped, np.full(5, 2), (32, 24))
            np.testing.assert_allclose(maps, expected, atol=1e-6)
        else:
            assert np.abs(x - plain[0]).max() < 0.1
            np.testing.assert_array_equal(maps, plain[1])
        # "left" is the leftmost ink of what the network sees, mirrored or not
        peak_x = [np.unravel_index(h.argmax(), h.shape)[1] for h in maps]
        assert peak_x[2] == min(peak_x) < max(peak_x) == peak_x[3]
        np.testing.assert_array_equal(weights, 1)
        seen.add(mirrored)
    assert seen == {False, True}, "all samples mirrored, or none"


@pytest.mark.integration
@pytest.mark.usefixtures("seeded_mxnet")
def test_pose_training_lowers_the_loss(tmp_path, digits_root):
    import edgecv
    from edgecv import _runtime
    from edgecv.evaluate import FloatModel
    from edgecv.train import TrainConfig, train

    cfg = TrainConfig(
        epochs=6,
        batch_size=8,
        lr=1e-3,
        optimizer="adam",
        wd=0.0,
        warmup_epochs=0.5,
        input_size=128,
        hflip=False,
    )
    report = train(MODEL, digits_root / "coco", tmp_path / "run", cfg, progress=False)
    losses = [h["loss"] for h in report["history"]]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0], losses
    val = COCOKeypoints(digits_root / "coco", "val")
    assert report["val"]["people"] == sum(len(lab.kept()) for lab in val.labels())
    assert 0.0 <= report["val"]["keypoint_ap"] <= 1.0

    # the saved weights behind the C++ crop and decode, on a few validation images
    net = edgecv.get_model(
        MODEL, pretrained=tmp_path / "run" / f"{MODEL}.params", classes=list(val.classes)
    )
    model = FloatModel(net, input_size=128)
    got = evaluate(model, val, limit=3)
    assert got["people"] == sum(len(lab.kept()) for lab in val.labels()[:3])
    assert 0.0 <= got["keypoint_ap"] <= got["keypoint_ap50"] <= 1.0
    image, label = val[0]
    keypoints, scores = model.pose(image, label.boxes)
    assert keypoints.shape == (len(label), 5, 2) and scores.shape == (len(label), 5)
    x0, y0, x1, y1 = label.boxes[0]
    crop = _runtime.person_crop([x0, y0, x1, y1], 96, 128, 1.25, 128, 128)
    assert np.all((keypoints[0] >= crop[:2]) & (keypoints[0] <= np.add(crop[:2], crop[2:])))
    with pytest.raises(InvalidInputError, match=r"\(N, 4\)"):
        model.pose(image, [[1, 2, 3]])
    with pytest.raises(InvalidInputError, match="box 0: .*no area"):
        model.pose(image, [[10, 10, 10, 20]])
    assert model.pose(image, np.zeros((0, 4)))[0].shape == (0, 5, 2)


@pytest.mark.parity
@pytest.mark.usefixtures("seeded_mxnet")
def test_float_and_artifact_poses_agree(tmp_path):
    """One evaluation for both: the MXNet model and its compiled artifact give the same
    poses and the same keypoint AP on a COCO-style set (17 joints, two boxes)."""
    import mxnet as mx

    import edgecv
    from edgecv.compile import CompileOptions, compile_model
    from edgecv.evaluate import ArtifactModel, FloatModel

    from conftest import SAMPLE_IMAGE, calibrate_batchnorm, scale_last_layer

    name, shape = "mobile_pose_mobilenet1.0", (1, 3, 128, 96)
    net = edgecv.get_model(name)
    x = mx.nd.array(np.random.RandomState(0).uniform(-2, 2, (2, *shape[1:])))
    net(x)
    # well-scaled heatmaps (random weights alone give flat ones, with ties for the peak)
    calibrate_batchnorm(net, x)
    scale_last_layer(net, net.upsampling[-1], x)
    params = tmp_path / f"{name}.params"
    net.save_parameters(str(params))
    art = compile_model(
        CompileOptions(
            model=name, input_size=128, pretrained=str(params), out_dir=str(tmp_path / "a")
        )
    )
    float_model = FloatModel(edgecv.get_model(name, pretrained=params), input_size=128)
    artifact = ArtifactModel(art)

    image = cv2.imread(str(SAMPLE_IMAGE))
    boxes = np.array([[60, 30, 260, 290], [200, 40, 400, 290]], np.float32)
    kf, sf = float_model.pose(image, boxes)
    ka, sa = artifact.pose(image, boxes)
    assert kf.shape == ka.shape == (2, 17, 2)
    np.testing.assert_allclose(ka, kf, atol=0.5)
    np.testing.assert_allclose(sa, sf, rtol=1e-3, atol=1e-4 * np.abs(sf).max())
    assert min(len({tuple(p) for p in np.round(k)}) for k in kf) >= 5, "collapsed keypoints"

    # ground truth := the float model's poses, so that its AP is 1
    root = tmp_path / "coco"
    (root / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    shutil.copy(SAMPLE_IMAGE, root / "val" / "cat.jpg")
    names = label_set("coco_keypoints")
    doc = {
        "images": [{"id": 1, "file_name": "cat.jpg"}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(names)}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                "area": float((b[2] - b[0]) * (b[3] - b[1])),
                "iscrowd": 0,
                "keypoints": [v for p in k for v in (float(p[0]), float(p[1]), 2)],
            }
            for i, (b, k) in enumerate(zip(boxes, kf, strict=True))
        ],
    }
    (root / "annotations" / "person_keypoints_val.json").write_text(json.dumps(doc))
    data = COCOKeypoints(root, "val")
    np.testing.assert_array_equal(data.sigmas, COCO_KEYPOINT_SIGMAS)
    by_float, by_artifact = evaluate(float_model, data), evaluate(artifact, data)
    assert by_float["keypoint_ap"] == pytest.approx(1.0)
    for key in ("keypoint_ap", "keypoint_ap50", "keypoint_ap75"):
        assert by_artifact[key] == pytest.approx(by_float[key], abs=0.02), key
