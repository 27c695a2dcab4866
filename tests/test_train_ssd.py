"""SSD training: priors matched as the paper says, offsets the model's decode inverts,
hard negatives 3 per positive, the multibox loss by hand, a short run that learns."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.train import TrainConfig, train
from edgecv.train.ssd import encode_boxes, hard_negatives, match_priors, multibox_loss

pytestmark = pytest.mark.integration

VAR = (0.1, 0.1, 0.2, 0.2)


def _decode(offsets: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """The decode of edgecv.zoo.ssd's forward and the C++ DecodeSsd, written out."""
    cx = offsets[:, 0] * VAR[0] * priors[:, 2] + priors[:, 0]
    cy = offsets[:, 1] * VAR[1] * priors[:, 3] + priors[:, 1]
    w = np.exp(offsets[:, 2] * VAR[2]) * priors[:, 2]
    h = np.exp(offsets[:, 3] * VAR[3]) * priors[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


@pytest.mark.unit
def test_threshold_and_bipartite_matches_by_hand():
    priors = np.array(
        [
            [20, 20, 20, 20],  # (10, 10, 30, 30): IoU 0.82 with box 0, not its best
            [60, 60, 40, 40],  # (40, 40, 80, 80): IoU 0.44 with box 1, its best
            [100, 100, 20, 20],  # far from both
            [22, 20, 20, 24],  # (12, 8, 32, 32): IoU 0.83 with box 0, its best
        ],
        np.float32,
    )
    boxes = np.array([[12, 10, 32, 30, 3], [40, 40, 100, 100, 0]], np.float32)
    cls, offsets = match_priors(priors, boxes, VAR)
    # prior 0 passes the 0.5 threshold; prior 1 only through the bipartite rule
    np.testing.assert_array_equal(cls, [4, 1, 0, 4])
    np.testing.assert_allclose(offsets[0], [1.0, 0, 0, 0], atol=1e-6)
    r = np.log(1.5) / 0.2
    np.testing.assert_allclose(offsets[1], [2.5, 2.5, r, r], rtol=1e-6)
    np.testing.assert_array_equal(offsets[2], 0)
    np.testing.assert_allclose(offsets[3], [0, 0, 0, np.log(20 / 24) / 0.2], atol=1e-6)
    # the offsets are what the model's decode turns back into the boxes
    pos = cls > 0
    matched = boxes[[0, 1, 0], :4]
    np.testing.assert_allclose(_decode(offsets[pos], priors[pos]), matched, atol=1e-4)


@pytest.mark.unit
def test_two_boxes_never_share_a_prior():
    priors = np.array([[10, 10, 20, 20], [30, 10, 20, 20]], np.float32)
    # both boxes overlap prior 0 best; box 1 (IoU 0.82 there, 0.05 with prior 1) must
    # still get a prior of its own
    boxes = np.array([[0, 0, 20, 20, 5], [2, 0, 22, 20, 7]], np.float32)
    cls, offsets = match_priors(priors, boxes, VAR)
    np.testing.assert_array_equal(cls, [6, 8])
    np.testing.assert_allclose(offsets[0], 0, atol=1e-6)
    np.testing.assert_allclose(offsets[1], [-9.0, 0, 0, 0], atol=1e-6)
    cls, offsets = match_priors(priors, np.zeros((0, 5), np.float32), VAR)
    assert not cls.any() and not offsets.any()


@pytest.mark.unit
def test_encoding_round_trips():
    rng = np.random.RandomState(0)
    priors = np.concatenate([rng.uniform(20, 100, (50, 2)), rng.uniform(8, 60, (50, 2))], 1)
    xy = rng.uniform(0, 100, (50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 80, (50, 2))], 1)
    np.testing.assert_allclose(
        _decode(encode_boxes(priors, boxes, VAR), priors), boxes, rtol=1e-4, atol=1e-3
    )


def test_hard_negatives_are_three_per_positive():
    import mxnet as mx

    rng = np.random.RandomState(1)
    loss = rng.uniform(0, 5, (3, 20)).astype(np.float32)
    positive = np.zeros((3, 20), np.float32)
    positive[0, [2, 7]] = 1  # 2 positives: the 6 worst negatives
    positive[2, :18] = 1  # 18 positives, only 2 negatives left: both
    mask = hard_negatives(mx.nd.array(loss), mx.nd.array(positive)).asnumpy()
    assert mask.sum(axis=1).tolist() == [6, 0, 2]
    assert not (mask * positive).any()
    negatives = np.where(positive[0] == 0, loss[0], -1)
    assert set(np.nonzero(mask[0])[0]) == set(np.argsort(-negatives)[:6])
    assert set(np.nonzero(mask[2])[0]) == {18, 19}


def test_multibox_loss_by_hand():
    import mxnet as mx

    rng = np.random.RandomState(2)
    b, n, c = 2, 10, 3
    logits = rng.normal(0, 2, (b, n, c + 1)).astype(np.float32)
    box_pred = rng.normal(0, 1, (b, n, 4)).astype(np.float32)
    box_t = rng.normal(0, 1, (b, n, 4)).astype(np.float32)
    cls_t = np.zeros((b, n), np.float32)
    cls_t[0, 1], cls_t[1, [4, 5]] = 2, 3  # 3 positives in the batch
    nd = mx.nd
    got = multibox_loss(*(nd.array(a) for a in (logits, box_pred, cls_t, box_t))).asnumpy()

    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, cls_t.astype(int)[..., None], -1)[..., 0]
    total = 0.0
    for i in range(b):
        pos = cls_t[i] > 0
        neg = np.argsort(-np.where(pos, -1, ce[i]))[: 3 * pos.sum()]
        d = np.abs(box_pred[i] - box_t[i])
        smooth = np.where(d < 1, 0.5 * d * d, d - 0.5)
        total += ce[i, pos].sum() + ce[i, neg].sum() + smooth[pos].sum()
    assert got.shape == (b,)
    assert got.mean() == pytest.approx(total / 3, rel=1e-5)


@pytest.mark.unit
def test_augment_stretches_for_ssd(monkeypatch):
    from edgecv.train import detection

    monkeypatch.setattr(detection, "_crop", lambda image, boxes, rng: (image, boxes))
    cfg = TrainConfig(hflip=False, extra={"max_expand": 1, "color": 0})
    image = np.zeros((64, 128, 3), np.uint8)
    image[16:32, 40:60] = 255
    label = np.array([[40, 16, 60, 32, 2]], np.float32)
    rng = np.random.RandomState(0)
    out, boxes = detection.augment(image, label, (128, 128), (0, 0, 0), rng, cfg, "stretch")
    assert out.shape == (128, 128, 3)
    np.testing.assert_allclose(boxes, [[40, 32, 60, 64, 2]])
    assert out[34:62, 42:58].min() > 250 and out[:30].max() < 5  # no letterbox band
    _, boxes = detection.augment(image, label, (128, 128), (0, 0, 0), rng, cfg)
    np.testing.assert_allclose(boxes, [[40, 48, 60, 64, 2]])


class _Digits:  # a dataset stand-in: only the class names matter here
    classes = tuple(str(d) for d in range(10))


@pytest.fixture(scope="module")
def task():
    import mxnet as mx

    from edgecv import zoo
    from edgecv.train.ssd import SSDTask

    mx.random.seed(0)
    net = zoo.get_model("ssd_512_mobilenet1.0_voc", classes=list(_Digits.classes))
    return SSDTask(net, _Digits(), TrainConfig(), net.edgecv_meta.data.scaled(128))


def test_targets_use_the_priors_the_artifact_ships(task):
    task.net.prepare_deploy((1, 3, 128, 128))
    head = task.net.deploy_head()
    np.testing.assert_array_equal(head["files"]["priors.bin"], task.priors)
    assert tuple(head["postprocess"][0]["variances"]) == task.variances == VAR
    cls, _ = task.targets(np.array([[10, 20, 60, 70, 4]], np.float32))
    assert len(cls) == len(task.priors) and cls.max() == 5


def test_backbone_from_a_classifier(task, tmp_path):
    import mxnet as mx

    from edgecv import zoo
    from edgecv.errors import InvalidInputError

    mx.random.seed(1)
    classifier = zoo.get_model("mobilenet1.0", classes=10)
    classifier(mx.nd.zeros((1, 3, 32, 32)))
    classifier.save_parameters(str(tmp_path / "m.params"))
    task.load_backbone(str(tmp_path / "m.params"))
    src = list(classifier.features.collect_params().values())
    dst = list(task.net.features.base.collect_params().values())
    assert len(dst) == len(src) > 100
    for s, d in zip(src, dst, strict=True):
        np.testing.assert_array_equal(d.data().asnumpy(), s.data().asnumpy())
    mx.nd.save(str(tmp_path / "bad.params"), {"output.weight": mx.nd.zeros((10, 8))})
    with pytest.raises(InvalidInputError):
        task.load_backbone(str(tmp_path / "bad.params"))


def test_ssd_loss_drops_and_decodes(tmp_path, digits_root):
    cfg = TrainConfig(
        epochs=3,
        batch_size=8,
        lr=2e-3,
        optimizer="adam",
        hflip=False,
        label_smoothing=0,
        max_iters_per_epoch=4,
        warmup_epochs=0.25,
        input_size=128,
        deterministic=True,
    )
    report = train(
        "ssd_512_mobilenet1.0_voc", digits_root / "voc", tmp_path / "ssd", cfg, progress=False
    )
    losses = [h["loss"] for h in report["history"]]
    assert losses[-1] < 0.8 * losses[0], losses  # measured: 27.6, 22.4, 18.9
    # the detections path (softmax, decode, NMS) of the trained weights, on the val scenes
    assert 0.0 <= report["val"]["voc07_map"] <= 1.0 and report["val"]["images"] == 16
