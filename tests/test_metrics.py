"""Metrics against hand-computed cases (no MXNet, no TVM)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.errors import InvalidInputError
from edgecv.evaluate import (
    COCO_KEYPOINT_SIGMAS,
    VOC07MAP,
    SegmentationMetric,
    box_iou,
    coco_ap,
    keypoint_ap,
    oks,
    topk_accuracy,
)

pytestmark = pytest.mark.unit


def test_topk_accuracy_by_hand():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    labels = [2, 0, 1]
    # row 0: label 2 is second; row 1: first; row 2: label 1 ties with label 0, both below 2
    acc = topk_accuracy(scores, labels, ks=(1, 2, 3, 5))
    assert acc == {
        "top1": pytest.approx(1 / 3),
        "top2": pytest.approx(1.0),
        "top3": pytest.approx(1.0),
    }


def test_topk_rejects_mismatch():
    with pytest.raises(InvalidInputError):
        topk_accuracy(np.zeros((2, 3)), [0])
    with pytest.raises(InvalidInputError):
        topk_accuracy(np.zeros((0, 3)), [])


def test_box_iou_by_hand():
    iou = box_iou(np.array([[0, 0, 2, 2], [0, 0, 1, 1]]), np.array([[1, 1, 3, 3], [5, 5, 5, 5]]))
    np.testing.assert_allclose(iou, [[1 / 7, 0], [0, 0]])


def test_voc07_one_class_by_hand():
    m = VOC07MAP(num_classes=1)
    gt = np.array([[0, 0, 10, 10, 0, 0], [20, 20, 30, 30, 0, 0]], np.float32)
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 31]], np.float32)
    m.update(np.zeros(3), np.array([0.9, 0.8, 0.7]), boxes, gt)
    # P/R after each detection: (1, .5), (.5, .5), (2/3, 1) → 11-point AP
    expected = (6 * 1.0 + 5 * (2 / 3)) / 11
    assert m.per_class() == [pytest.approx(expected)]
    assert m.get() == pytest.approx(expected)


def test_voc07_duplicates_difficult_and_missing_classes():
    m = VOC07MAP(num_classes=3)
    gt = np.array([[0, 0, 10, 10, 0, 0], [40, 40, 50, 50, 0, 1]], np.float32)
    # the second hit on the same object is a false positive; the difficult one is ignored
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [40, 40, 50, 50]], np.float32)
    m.update(np.array([0, 0, 0]), np.array([0.9, 0.8, 0.95]), boxes, gt)
    ap = m.per_class()
    assert ap[0] == pytest.approx(1.0)  # recall 1 reached at precision 1 before the duplicate
    assert ap[1] is None and ap[2] is None  # no ground truth: left out of the mean
    assert m.get() == pytest.approx(1.0)


def test_voc07_iou_threshold_and_wrong_class():
    m = VOC07MAP(num_classes=2)
    gt = np.array([[0, 0, 10, 10, 1, 0]], np.float32)
    m.update(np.array([0]), np.array([0.9]), np.array([[0, 0, 10, 10]]), gt)  # wrong class
    m.update(np.array([1]), np.array([0.8]), np.array([[0, 0, 10, 4.9]]), gt[:0])  # no gt here
    assert m.per_class() == [None, 0.0]
    one = np.array([[0, 0, 10, 10, 0, 0]], np.float32)
    at_half = VOC07MAP(num_classes=1)
    at_half.update(np.array([0]), np.array([0.5]), np.array([[0, 0, 10, 5]]), one)
    assert at_half.get() == pytest.approx(1.0)  # IoU exactly 0.5 is a match
    below = VOC07MAP(num_classes=1)
    below.update(np.array([0]), np.array([0.5]), np.array([[0, 0, 10, 4.9]]), one)
    assert below.get() == pytest.approx(0.0)


def test_coco_ap_perfect_and_empty():
    gts = [np.array([[0, 0, 10, 10, 0, 0], [20, 20, 40, 40, 1, 0]], np.float32)]
    perfect = [(np.array([0, 1]), np.array([0.9, 0.8]), gts[0][:, :4])]
    assert coco_ap(gts, perfect, 2, [(64, 64)])["coco_ap"] == pytest.approx(1.0)
    empty = [(np.zeros(0), np.zeros(0), np.zeros((0, 4)))]
    assert coco_ap(gts, empty, 2, [(64, 64)])["coco_ap"] == 0.0


def test_segmentation_by_hand():
    m = SegmentationMetric(num_classes=4)
    label = np.array([[0, 0, 1], [1, 1, 2], [2, 255, 0]])
    pred = np.array([[0, 1, 1], [1, 2, 2], [2, 0, 0]])
    m.update(label, pred)
    # 8 counted pixels (255 ignored); class 3 is in neither label nor prediction
    expected = np.array([[2, 1, 0, 0], [0, 2, 1, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(m.confusion, expected)
    got = m.get()
    assert got["pixel_accuracy"] == pytest.approx(6 / 8)
    # IoU = tp / (row + column - tp): 2/(3+2-2), 2/(3+3-2), 2/(2+3-2); class 3 excluded
    assert got["iou"] == [pytest.approx(2 / 3), pytest.approx(1 / 2), pytest.approx(2 / 3), None]
    assert got["mean_iou"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)  # 11/18
    # labels outside [0, num_classes) are ignored too; updates accumulate
    m.update(np.array([[3, -1, 9]]), np.array([[3, 0, 0]]))
    got = m.get()
    assert got["pixel_accuracy"] == pytest.approx(7 / 9)
    assert got["iou"][3] == pytest.approx(1.0)
    assert got["mean_iou"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3 + 1) / 4)


def test_segmentation_rejects_bad_input():
    m = SegmentationMetric(num_classes=3)
    with pytest.raises(InvalidInputError, match=r"\(2, 3\).*\(3, 2\)"):
        m.update(np.zeros((2, 3), np.int64), np.zeros((3, 2), np.int64))
    with pytest.raises(InvalidInputError, match="outside"):
        m.update(np.zeros((2, 2), np.int64), np.array([[0, 1], [2, 3]]))
    with pytest.raises(InvalidInputError, match="no labelled pixels"):
        m.get()
    m.update(np.full((2, 2), 255), np.zeros((2, 2), np.int64))  # all ignored
    with pytest.raises(InvalidInputError, match="no labelled pixels"):
        m.get()


def _person(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> np.ndarray:
    """17 keypoints (x, y, v=2) inside the box."""
    xy = rng.uniform([x, y], [x + w, y + h], size=(17, 2))
    return np.concatenate([xy, np.full((17, 1), 2.0)], axis=1)


def test_oks_by_hand():
    rng = np.random.default_rng(0)
    kp = _person(rng, 10, 10, 40, 80)
    area = 2000.0
    assert oks(kp[:, :2], kp[:, 2], area, kp[:, :2]) == pytest.approx(1.0)
    moved = kp[:, :2].copy()
    moved[5] += [3.0, 4.0]  # left shoulder, 5 px away
    e = 25.0 / (2 * 0.079) ** 2 / area / 2
    assert oks(kp[:, :2], kp[:, 2], area, moved) == pytest.approx((16 + np.exp(-e)) / 17, rel=1e-12)
    # only labelled keypoints count: two labelled, one of them 5 px off
    vis = np.zeros(17)
    vis[[0, 5]] = [1, 2]
    far = moved.copy()
    far[[1, 2, 3, 10, 16]] += 500.0  # unlabelled: no effect
    assert oks(kp[:, :2], vis, area, far) == pytest.approx((1 + np.exp(-e)) / 2, rel=1e-12)
    assert oks(kp[:, :2], np.zeros(17), area, kp[:, :2]) == 0.0  # nothing labelled
    with pytest.raises(InvalidInputError, match="17"):
        oks(kp[:5, :2], kp[:5, 2], area, kp[:5, :2])


def _gt(kp: np.ndarray, area: float = 2000.0) -> dict:
    return {"keypoints": kp, "area": area}


def _det(kp: np.ndarray, score: float) -> dict:
    return {"keypoints": kp[:, :2], "score": score}


def test_keypoint_ap_perfect_and_half_recall():
    rng = np.random.default_rng(1)
    a, b, c = _person(rng, 0, 0, 40, 80), _person(rng, 100, 0, 40, 80), _person(rng, 0, 0, 30, 60)
    perfect = keypoint_ap(
        [[_gt(a), _gt(b)], [_gt(c)]], [[_det(b, 0.3), _det(a, 0.9)], [_det(c, 0.5)]]
    )
    assert perfect == {
        "oks_ap": pytest.approx(1.0),
        "oks_ap50": pytest.approx(1.0),
        "oks_ap75": pytest.approx(1.0),
    }
    # one of two people found, perfectly: precision 1 at recall 0 … 0.5 (51 of the 101
    # recall points), nothing beyond, at every threshold
    half = keypoint_ap([[_gt(a), _gt(b)]], [[_det(a, 0.9)]])
    assert half == {
        "oks_ap": pytest.approx(51 / 101),
        "oks_ap50": pytest.approx(51 / 101),
        "oks_ap75": pytest.approx(51 / 101),
    }


def test_keypoint_ap_false_positive_first():
    rng = np.random.default_rng(2)
    a = _person(rng, 0, 0, 40, 80)
    fp = a.copy()
    fp[:, :2] += 300.0
    # P/R: (0, 0) then (1/2, 1); the interpolated precision is 1/2 at every recall point
    got = keypoint_ap([[_gt(a)]], [[_det(fp, 0.9), _det(a, 0.8)]])
    assert got == {
        "oks_ap": pytest.approx(0.5),
        "oks_ap50": pytest.approx(0.5),
        "oks_ap75": pytest.approx(0.5),
    }
    # the same person found twice: the second is a false positive after recall 1 → AP 1
    assert keypoint_ap([[_gt(a)]], [[_det(a, 0.9), _det(a, 0.8)]])["oks_ap"] == pytest.approx(1.0)


def test_keypoint_ap_thresholds_and_unlabelled_ground_truth():
    rng = np.random.default_rng(3)
    a = _person(rng, 0, 0, 40, 80)
    a[1:, 2] = 0  # only the nose is labelled: OKS = exp(-e) of its distance
    area, target = 2000.0, 0.72  # passes thresholds .50 … .70 (5 of 10), fails .75
    d = np.sqrt(-np.log(target) * 2 * area * (2 * COCO_KEYPOINT_SIGMAS[0]) ** 2)
    moved = a.copy()
    moved[0, 0] += d
    assert oks(a[:, :2], a[:, 2], area, moved[:, :2]) == pytest.approx(target)
    unlabelled = _person(rng, 0, 0, 40, 80)
    unlabelled[:, 2] = 0  # dropped: neither a positive nor a match
    got = keypoint_ap([[_gt(a, area), _gt(unlabelled)]], [[_det(moved, 0.7)]])
    assert got == {
        "oks_ap": pytest.approx(0.5),
        "oks_ap50": pytest.approx(1.0),
        "oks_ap75": pytest.approx(0.0),
    }


def test_keypoint_ap_rejects_bad_input():
    rng = np.random.default_rng(4)
    a = _person(rng, 0, 0, 40, 80)
    with pytest.raises(InvalidInputError, match="no ground truth"):
        keypoint_ap([[], []], [[_det(a, 0.5)], []])
    unlabelled = a.copy()
    unlabelled[:, 2] = 0
    with pytest.raises(InvalidInputError, match="no ground truth"):
        keypoint_ap([[_gt(unlabelled)]], [[]])
    with pytest.raises(InvalidInputError, match="17"):
        keypoint_ap([[_gt(a[:5])]], [[]])
    with pytest.raises(InvalidInputError, match="17"):
        keypoint_ap([[_gt(a)]], [[_det(a[:5], 0.5)]])
    with pytest.raises(InvalidInputError, match="2 images"):
        keypoint_ap([[_gt(a)], []], [[]])


@pytest.mark.parametrize("seed", range(5))
def test_keypoint_ap_matches_pycocotools(seed):
    pytest.importorskip("pycocotools")
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(seed)
    gts, preds = [], []
    images, annotations, results = [], [], []
    for img in range(4):
        img_gts, img_preds = [], []
        for _ in range(rng.integers(1, 5)):
            x, y = rng.uniform(0, 400, size=2)
            w, h = rng.uniform(30, 120, size=2)
            kp = _person(rng, x, y, w, h)
            kp[:, 2] = rng.choice([0, 1, 2], size=17, p=[0.25, 0.25, 0.5])
            kp[rng.integers(17), 2] = 2  # at least one labelled keypoint
            area = float(w * h * rng.uniform(0.4, 0.9))
            img_gts.append(_gt(kp, area))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": img + 1,
                    "category_id": 1,
                    "keypoints": kp.reshape(-1).tolist(),
                    "num_keypoints": int((kp[:, 2] > 0).sum()),
                    "area": area,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "iscrowd": 0,
                }
            )
            # found (sometimes twice), with jitter on the scale of the person
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                noise = rng.normal(0, rng.uniform(0.0, 0.15) * np.sqrt(area), size=(17, 2))
                img_preds.append(_det(kp[:, :2] + noise, float(rng.uniform())))
        for _ in range(rng.integers(0, 3)):  # false positives somewhere else
            img_preds.append(
                _det(_person(rng, *rng.uniform(0, 400, size=2), 60, 90), float(rng.uniform()))
            )
        # ground truth without labelled keypoints, far from everything: COCOeval ignores
        # it, keypoint_ap drops it; nothing can match it either way
        empty = np.zeros((17, 3))
        img_gts.append(_gt(empty, 100.0))
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": img + 1,
                "category_id": 1,
                "keypoints": empty.reshape(-1).tolist(),
                "num_keypoints": 0,
                "area": 100.0,
                "bbox": [5000.0, 5000.0, 10.0, 10.0],
                "iscrowd": 0,
            }
        )
        for p in img_preds:
            kp3 = np.concatenate([p["keypoints"], np.ones((17, 1))], axis=1)
            results.append(
                {
                    "image_id": img + 1,
                    "category_id": 1,
                    "keypoints": kp3.reshape(-1).tolist(),
                    "score": p["score"],
                }
            )
        images.append({"id": img + 1, "width": 640, "height": 640})
        gts.append(img_gts)
        preds.append(img_preds)
    assert 0 < len(results) <= 4 * 20 and all(len(p) <= 20 for p in preds)  # COCO's maxDets

    gt_coco = COCO()
    gt_coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco.createIndex()
        ev = COCOeval(gt_coco, gt_coco.loadRes(results), iouType="keypoints")
        ev.params.imgIds = [im["id"] for im in images]
        ev.params.maxDets = [20]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = keypoint_ap(gts, preds)
    assert ours["oks_ap"] == pytest.approx(ev.stats[0], abs=1e-9)
    assert ours["oks_ap50"] == pytest.approx(ev.stats[1], abs=1e-9)
    assert ours["oks_ap75"] == pytest.approx(ev.stats[2], abs=1e-9)
    assert 0.05 < ours["oks_ap"] < 0.95  # a case that exercises partial matches
