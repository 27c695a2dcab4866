"""Classification training: augmentation, mixup, label smoothing, warmup + cosine LR."""

from __future__ import annotations

from typing import Any

import numpy as np

from .common import TrainConfig, color_jitter, normalise


def augment(
    image_bgr: np.ndarray, size: tuple[int, int], rng: np.random.RandomState, config: TrainConfig
) -> np.ndarray:
    """Random scale/aspect/shift (a random-resized-crop that keeps at least 64% of the
    area), optional horizontal flip and color jitter; returns float HxWx3 RGB 0..255."""
    import cv2

    h, w = image_bgr.shape[:2]
    area = rng.uniform(config.extra.get("min_area", 0.64), 1.0) * h * w
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, round(np.sqrt(area * ratio))))
    ch = int(min(h, round(np.sqrt(area / ratio))))
    x0, y0 = rng.randint(0, w - cw + 1), rng.randint(0, h - ch + 1)
    crop = image_bgr[y0 : y0 + ch, x0 : x0 + cw]
    out = cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    if config.hflip and rng.rand() < 0.5:
        out = out[:, ::-1]
    return color_jitter(out[..., ::-1], rng, config.extra.get("color", 0.3))


def plain(image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(image_bgr, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)[..., ::-1]


class ClassificationTask:
    """What the shared loop needs: batches, the loss, the metric of a batch."""

    def __init__(self, net: Any, dataset: Any, config: TrainConfig, data: Any):
        from mxnet import gluon

        self.net, self.dataset, self.config, self.data = net, dataset, config, data
        self.num_classes = len(dataset.classes)
        self.loss = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)

    def batches(self, rng: np.random.RandomState, epoch: int):
        """(images NCHW float32, soft targets N×C) batches of one epoch."""
        cfg = self.config
        mixup = cfg.mixup_alpha > 0 and epoch < cfg.epochs - cfg.mixup_off_epochs
        eps = cfg.label_smoothing
        for batch in cfg.epoch_batches(rng.permutation(len(self.dataset)), epoch):
            xs, ys = [], []
            for i, sample_rng in batch:
                image, label = self.dataset[i]
                xs.append(
                    normalise(
                        augment(image, self.data.input_size, sample_rng, cfg),
                        self.data.mean,
                        self.data.std,
                    )
                )
                ys.append(label)
            x = np.stack(xs)
            y = np.full((len(ys), self.num_classes), eps / self.num_classes, np.float32)
            y[np.arange(len(ys)), ys] += 1 - eps
            if mixup:
                lam = batch.rng().beta(cfg.mixup_alpha, cfg.mixup_alpha)
                x = lam * x + (1 - lam) * x[::-1]
                y = lam * y + (1 - lam) * y[::-1]
            yield x.astype(np.float32), y

    def train_mode(self) -> None:
        self.net.hybridize(static_alloc=True)

    def validate(self, float_model: Any, evaluate: Any, val: Any) -> dict[str, Any]:
        return evaluate(float_model(self.net), val)

    def losses(self, outputs: Any, targets: Any) -> Any:
        return self.loss(outputs, targets)

    @staticmethod
    def batch_accuracy(outputs: Any, targets: Any) -> float:
        return float((outputs.argmax(axis=1) == targets.argmax(axis=1)).mean().asscalar())
