"""Training: the loss goes down, runs are bit-reproducible, resume repeats the uninterrupted
run, YOLOv3 targets land where the paper puts them."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from edgecv.errors import InvalidInputError
from edgecv.train import TrainConfig, train
from edgecv.train.common import Checkpoint, LRSchedule

pytestmark = pytest.mark.integration


def _short(**kw) -> TrainConfig:
    base = dict(
        epochs=2,
        batch_size=16,
        lr=0.05,
        hflip=False,
        max_iters_per_epoch=6,
        warmup_epochs=0.5,
        deterministic=True,
    )
    base.update(kw)
    return TrainConfig(**base)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.unit
def test_lr_schedule_warmup_then_cosine():
    s = LRSchedule(TrainConfig(epochs=4, lr=1.0, warmup_epochs=1), iters_per_epoch=10)
    assert s(0) == pytest.approx(0.1) and s(9) == pytest.approx(1.0)
    assert s(10) == pytest.approx(1.0)
    assert s(25) == pytest.approx(0.5 * (1 + np.cos(np.pi * 15 / 30)))
    assert s(39) < 0.01


def test_classification_loss_drops(tmp_path, digits_root):
    from edgecv.datasets import ImageFolder

    # the recipe's optimizer on the training split (a dataset object: no validation split)
    train_set = ImageFolder(digits_root / "classification" / "train")
    cfg = _short(epochs=4, batch_size=64, lr=0.2, label_smoothing=0.0, max_iters_per_epoch=0)
    report = train("mobilenet0.25_digits", train_set, tmp_path / "run", cfg, progress=False)
    losses = [h["loss"] for h in report["history"]]
    assert losses[-1] < 0.9 * losses[0], losses
    assert report["val"] is None


def test_classification_is_reproducible(tmp_path, digits_root):
    data = digits_root / "classification"
    a = train("mobilenet0.25_digits", data, tmp_path / "a", _short(epochs=3), progress=False)
    b = train("mobilenet0.25_digits", data, tmp_path / "b", _short(epochs=3), progress=False)
    losses = [h["loss"] for h in a["history"]]
    assert losses == [h["loss"] for h in b["history"]]
    assert _digest(tmp_path / "a" / "mobilenet0.25_digits.params") == _digest(
        tmp_path / "b" / "mobilenet0.25_digits.params"
    )
    c = train(
        "mobilenet0.25_digits", data, tmp_path / "c", _short(epochs=3, seed=1), progress=False
    )
    assert [h["loss"] for h in c["history"]] != losses
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "config" and [r["epoch"] for r in log if r["event"] == "epoch"] == [
        1,
        2,
        3,
    ]
    assert 0.0 <= a["val"]["top1"] <= 1.0 and a["val"]["images"] == 359


def test_resume_repeats_the_uninterrupted_run(tmp_path, digits_root, monkeypatch):
    data = digits_root / "classification"
    full = train("mobilenet0.25_digits", data, tmp_path / "full", _short(), progress=False)

    original = Checkpoint.save

    def save_then_stop(self, *args, **kw):
        original(self, *args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train("mobilenet0.25_digits", data, tmp_path / "cut", _short(), progress=False)
    monkeypatch.setattr(Checkpoint, "save", original)
    assert not (tmp_path / "cut" / "mobilenet0.25_digits.params").exists()
    with pytest.raises(InvalidInputError, match="resume"):
        train("mobilenet0.25_digits", data, tmp_path / "cut", _short(), progress=False)
    resumed = train(
        "mobilenet0.25_digits", data, tmp_path / "cut", _short(), resume=True, progress=False
    )
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in full["history"]]
    assert _digest(tmp_path / "cut" / "mobilenet0.25_digits.params") == _digest(
        tmp_path / "full" / "mobilenet0.25_digits.params"
    )


def test_training_refuses_bad_setups(tmp_path, digits_root, capsys):
    with pytest.raises(InvalidInputError, match="VOC detection dataset"):
        train("mobilenet0.25_digits", digits_root / "voc", tmp_path / "x", _short())
    from edgecv.cli import main

    code = main(
        [
            "train",
            "detection",
            "mobilenet0.25_digits",
            "--data",
            str(digits_root),
            "--out",
            str(tmp_path / "y"),
        ]
    )
    assert code == 3 and "is a classification model, not detection" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()
    with pytest.raises(InvalidInputError, match="learning rate"):
        TrainConfig(lr=0)
    with pytest.raises(InvalidInputError, match="unknown training settings"):
        TrainConfig.from_dict({"epochz": 3})


def test_mixup_blends_images_and_targets(digits_root):
    """Mixup (Zhang et al. 2018) as the recipe applies it: one Beta(a, a) weight per batch,
    each sample blended with the batch reversed, targets (smoothed one-hot) blended alike;
    off in the last ``mixup_off_epochs`` epochs."""
    from edgecv import zoo
    from edgecv.datasets import ImageFolder
    from edgecv.train.classification import ClassificationTask

    data = ImageFolder(digits_root / "classification" / "train")
    net = zoo.get_model("mobilenet0.25_digits", pretrained=False)
    spec = zoo.MODELS.get("mobilenet0.25_digits")

    def batch(cfg: TrainConfig, epoch: int):
        task = ClassificationTask(net, data, cfg, spec.data)
        return next(task.batches(np.random.RandomState(5), epoch))

    base = dict(batch_size=6, label_smoothing=0.1, hflip=False, epochs=4)
    plain_x, plain_y = batch(TrainConfig(**base), 0)
    mixed_x, mixed_y = batch(TrainConfig(**base, mixup_alpha=0.4, mixup_off_epochs=1), 0)
    # the augmentation draws come first, then one Beta draw: recover the weight from a pixel
    diff = plain_x - plain_x[::-1]
    i = np.unravel_index(np.argmax(np.abs(diff)), diff.shape)
    lam = float((mixed_x[i] - plain_x[::-1][i]) / diff[i])
    assert 0 < lam < 1
    np.testing.assert_allclose(mixed_x, lam * plain_x + (1 - lam) * plain_x[::-1], atol=1e-4)
    np.testing.assert_allclose(mixed_y, lam * plain_y + (1 - lam) * plain_y[::-1], atol=1e-5)
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, rtol=1e-6)
    labels = plain_y.argmax(axis=1)
    assert (labels != labels[::-1]).any()  # some pairs of different digits were blended
    # the last epoch trains without mixup
    last_x, last_y = batch(TrainConfig(**base, mixup_alpha=0.4, mixup_off_epochs=1), 3)
    plain_last_x, plain_last_y = batch(TrainConfig(**base), 3)
    np.testing.assert_array_equal(last_x, plain_last_x)
    np.testing.assert_array_equal(last_y, plain_last_y)


def test_yolo_targets_by_hand():
    import mxnet as mx

    from edgecv import zoo
    from edgecv.datasets import VOCDetection  # noqa: F401  (the task's dataset kind)
    from edgecv.train.detection import YoloTask

    mx.random.seed(0)
    net = zoo.get_model("yolo3_mobilenet0.25_digits", pretrained=False)

    class _Two:  # a dataset stand-in: only the class names matter here
        classes = tuple(str(d) for d in range(10))

    task = YoloTask(net, _Two(), TrainConfig(label_smoothing=0), net.edgecv_meta.data)
    # a box exactly the shape of anchor (14, 20) (stride 8, second anchor), centered in cell (3, 5)
    cx, cy = 3 * 8 + 4, 5 * 8 + 2
    box = np.array([[cx - 7, cy - 10, cx + 7, cy + 10, 6]], np.float32)
    obj, center, size, weight, cls, gt = task.targets(box)
    (i,) = np.nonzero(obj)[0]
    base = 4 * 4 * 3 + 8 * 8 * 3  # predictions of the stride 32 and 16 outputs come first
    assert i == base + (5 * 16 + 3) * 3 + 1
    np.testing.assert_allclose(center[i], [0.5, 0.25])
    np.testing.assert_allclose(size[i], [0, 0], atol=1e-6)
    assert weight[i, 0] == pytest.approx(2 - 14 * 20 / 128**2)
    assert cls[i].argmax() == 6 and cls[i].sum() == 1
    np.testing.assert_array_equal(gt[0], box[0, :4])
    assert obj.sum() == 1 and (gt[1:] == 0).all()


def test_detection_loss_drops(tmp_path, digits_root):
    cfg = TrainConfig(
        epochs=3,
        batch_size=8,
        lr=2e-3,
        optimizer="adam",
        hflip=False,
        label_smoothing=0,
        max_iters_per_epoch=4,
        warmup_epochs=0.25,
    )
    report = train(
        "yolo3_mobilenet0.25_digits", digits_root / "voc", tmp_path / "det", cfg, progress=False
    )
    losses = [h["loss"] for h in report["history"]]
    assert losses[-1] < losses[0], losses
    assert "voc07_map" in report["val"]
