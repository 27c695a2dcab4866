"""Metrics against hand-computed cases (no MXNet, no TVM)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.errors import InvalidInputError
from edgecv.evaluate import VOC07MAP, box_iou, coco_ap, topk_accuracy

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
