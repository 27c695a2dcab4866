"""CenterNet: the C++ decode (``centernet_decode``) against a NumPy reference written here,
its edge cases and bad input, the op's checks when an artifact is opened, and GluonCV's
forward from the same parameter file with scores that are not saturated. The compiled
model's parity with the MXNet forward is tests/test_detection.py::test_detector_parity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecv import _runtime
from edgecv.errors import ArtifactError, InvalidInputError
from edgecv.ops import preprocess_ops
from edgecv.registry import DataConfig

pytestmark = pytest.mark.cpp


def reference_decode(heatmap, wh, reg, k, stride=4, threshold=0.0):
    """Peaks (no higher value in the 3x3 window inside the map), the k best in class-major
    order (stable for ties), those above ``threshold``: ids, scores, boxes."""
    _, c, h, w = heatmap.shape
    padded = np.pad(heatmap[0], ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    window = np.max(
        [padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)], axis=0
    )
    scores = np.where(heatmap[0] == window, heatmap[0], -1.0).ravel()
    order = np.argsort(-scores, kind="stable")[:k]
    order = order[scores[order] > threshold]
    cls, cell = np.divmod(order, h * w)
    y, x = np.divmod(cell, w)
    cx = x + reg[0, 0].ravel()[cell]
    cy = y + reg[0, 1].ravel()[cell]
    bw, bh = wh[0, 0].ravel()[cell], wh[0, 1].ravel()[cell]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) * stride
    return cls, scores[order], boxes.astype(np.float32)


def _maps(c, h, w, seed, levels=None):
    rng = np.random.RandomState(seed)
    heat = rng.uniform(0, 1, (1, c, h, w)).astype(np.float32)
    if levels is not None:  # few distinct values: plateaus and ties in score
        heat = np.round(heat * levels) / levels
    wh = rng.uniform(0, 12, (1, 2, h, w)).astype(np.float32)
    reg = rng.uniform(0, 1, (1, 2, h, w)).astype(np.float32)
    return heat, wh, reg


def _check(heat, wh, reg, k, threshold=0.0, stride=4):
    got = _runtime.decode_centernet(heat, wh, reg, heat.shape[1], stride, k, threshold)
    want = reference_decode(heat, wh, reg, k, stride, threshold)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[2], want[2], rtol=0, atol=1e-4)
    return got


@pytest.mark.parametrize(
    "c,h,w,k,threshold,levels",
    [
        (3, 16, 16, 20, 0.0, None),
        (20, 8, 12, 40, 0.3, None),
        (5, 9, 7, 30, 0.0, 4),  # plateaus: tied neighbours are all peaks; ties by index
        (2, 1, 1, 5, 0.0, None),  # one cell: every class's only value is a peak
        (1, 5, 5, 1000, 0.0, None),  # k larger than the number of peaks
        (4, 10, 10, 15, 0.0, 1),  # saturated: many more ties at 1.0 than k, lowest indices kept
    ],
)
def test_decode_matches_numpy(c, h, w, k, threshold, levels):
    heat, wh, reg = _maps(c, h, w, seed=c * 100 + h, levels=levels)
    ids, scores, _ = _check(heat, wh, reg, k, threshold)
    assert len(ids) > 0 and np.all(np.diff(scores) <= 0)
    if k == 1000:
        assert len(ids) < h * w  # fewer peaks than k: all of them, no padding


def test_decode_peaks_at_borders_and_corners():
    heat = np.zeros((1, 1, 6, 6), np.float32)
    for (y, x), v in {(0, 0): 0.9, (0, 5): 0.8, (5, 0): 0.7, (5, 5): 0.6, (0, 3): 0.5}.items():
        heat[0, 0, y, x] = v
    heat[0, 0, 1, 3] = 0.5  # ties with the border peak above it: both are peaks
    heat[0, 0, 3, 2] = 0.4
    wh = np.full((1, 2, 6, 6), 2.0, np.float32)
    reg = np.zeros((1, 2, 6, 6), np.float32)
    ids, scores, boxes = _check(heat, wh, reg, k=10, threshold=0.1)
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.4])
    np.testing.assert_allclose(boxes[0], [-4, -4, 4, 4])  # centre (0, 0), 2x2 cells of 4 px
    np.testing.assert_allclose(boxes[4:6, 1], [-4, 0])  # the tie: row 0 before row 1
    # a lower neighbour never suppresses; a higher one always does
    heat[0, 0, 3, 3] = 0.45
    _, scores, _ = _check(heat, wh, reg, k=10, threshold=0.1)
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.45])


def test_decode_bad_input_is_refused():
    heat, wh, reg = _maps(3, 8, 8, seed=1)
    with pytest.raises(InvalidInputError, match="heatmap contains NaN"):
        bad = heat.copy()
        bad[0, 2, 7, 7] = np.nan
        _runtime.decode_centernet(bad, wh, reg, 3)
    with pytest.raises(InvalidInputError, match=r"probabilities in \[0, 1\] \(after the sigmoid\)"):
        _runtime.decode_centernet(heat * 8 - 4, wh, reg, 3)  # logits: a model without its sigmoid
    with pytest.raises(InvalidInputError, match=r"heatmap has shape \(1, 3, 8, 8\), expected"):
        _runtime.decode_centernet(heat, wh, reg, 4)  # another class count
    with pytest.raises(InvalidInputError, match=r"wh has shape \(1, 2, 8, 7\)"):
        _runtime.decode_centernet(heat, wh[..., :7], reg, 3)
    with pytest.raises(InvalidInputError, match=r"reg has shape \(1, 3, 8, 8\)"):
        _runtime.decode_centernet(heat, wh, heat, 3)
    with pytest.raises(InvalidInputError, match=r"heatmap has shape \(3, 8, 8\)"):
        _runtime.decode_centernet(heat[0], wh, reg, 3)
    with pytest.raises(InvalidInputError, match="must be >= 1"):
        _runtime.decode_centernet(heat, wh, reg, 3, topk=0)
    inf = wh.copy()
    inf[:] = np.inf
    with pytest.raises(InvalidInputError, match="non-finite box size"):
        _runtime.decode_centernet(heat, inf, reg, 3)
    # nothing above the threshold: no detections, no error
    assert len(_runtime.decode_centernet(heat * 0, wh, reg, 3, score_threshold=0.1)[0]) == 0


def _plan(ops, outputs, size=64):
    data = DataConfig(input_size=(size, size), resize_short=0, resize="letterbox")
    pre = _runtime.Preprocessor(json.dumps(preprocess_ops(data)), [1, 3, size, size])
    return _runtime.check_postprocess("detection", json.dumps(ops), pre, outputs)


def test_manifest_op_is_checked_against_the_outputs():
    decode = {
        "op": "centernet_decode",
        "outputs": ["heatmap", "wh", "reg"],
        "num_classes": 20,
        "stride": 4,
        "topk": 40,
    }
    nms = {
        "op": "nms",
        "iou_threshold": 1.0,
        "score_threshold": 0.01,
        "topk": 40,
        "max_detections": 40,
        "class_agnostic": False,
    }
    good = [("heatmap", [1, 20, 16, 16]), ("wh", [1, 2, 16, 16]), ("reg", [1, 2, 16, 16])]
    plan = _plan([decode, nms], good)
    assert plan["decoder"] == "centernet" and plan["decoder_outputs"] == [0, 1, 2]
    with pytest.raises(ArtifactError, match="'heatmap' has shape .*inconsistent"):
        _plan([decode, nms], [("heatmap", [1, 21, 16, 16]), *good[1:]])
    with pytest.raises(ArtifactError, match="'reg' has shape .*inconsistent"):
        _plan([decode, nms], [*good[:2], ("reg", [1, 2, 8, 8])])
    with pytest.raises(ArtifactError, match="stride must be in 1..4096, not 0"):
        _plan([{**decode, "stride": 0}, nms], good)
    with pytest.raises(ArtifactError, match="stride 3 does not divide"):
        _plan([{**decode, "stride": 3}, nms], good)
    with pytest.raises(ArtifactError, match="three outputs"):
        _plan([{**decode, "outputs": ["heatmap", "wh"]}, nms], good)
    with pytest.raises(ArtifactError, match="unknown output 'size'"):
        _plan([{**decode, "outputs": ["heatmap", "size", "reg"]}, nms], good)


@pytest.mark.parity
@pytest.mark.usefixtures("seeded_mxnet")
@pytest.mark.parametrize(
    "name",
    [
        "center_net_resnet18_v1b_voc",
        "center_net_mobilenetv3_small_duc_voc",
        "center_net_dla34_voc",
    ],
)
def test_gluoncv_forward_from_the_same_file_with_distinct_scores(tmp_path, name):
    """GluonCV's CenterNet and ours from one .params file, heads shaped as in the parity
    test so that scores are distinct and below 1 (saturated ones all tie at 1.0): the
    same ids, scores and boxes; and the C++ decode of our three maps gives them too."""
    gluoncv = pytest.importorskip("gluoncv", reason="GluonCV reference not installed")
    import mxnet as mx
    from test_detection import shape_head_scores

    import edgecv

    from conftest import randomize_weights

    ref = gluoncv.model_zoo.get_model(name, pretrained=False, pretrained_base=False)
    x = mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (1, 3, 96, 128)))
    ref(x)
    randomize_weights(ref, seed=4)
    shape_head_scores(ref, x, seed=5)
    path = tmp_path / "cn.params"
    ref.save_parameters(str(path))
    net = edgecv.get_model(name, pretrained=path)
    expected, got = [o.asnumpy() for o in ref(x)], [o.asnumpy() for o in net(x)]
    assert 0.1 < expected[1].min() and expected[1].max() < 0.999
    assert len(np.unique(expected[1])) == expected[1].size  # no ties to hide an order bug
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-5)
    net.prepare_deploy(x.shape)
    heatmap, wh, reg = (o.asnumpy() for o in net(x))
    assert heatmap.shape == (1, 20, 24, 32) and wh.shape == reg.shape == (1, 2, 24, 32)
    ids, scores, boxes = _runtime.decode_centernet(heatmap, wh, reg, 20, 4, 40, 0.0)
    np.testing.assert_array_equal(ids, expected[0][0].astype(int))
    np.testing.assert_allclose(scores, expected[1][0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(boxes, expected[2][0], rtol=0, atol=1e-3)
