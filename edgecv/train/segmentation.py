"""Semantic segmentation training (FCN / PSPNet / DeepLabV3), as their papers and GluonCV's
recipe train them: random scale and crop (padding: the mean color, label "ignore"),
optional flip, color jitter; per-pixel softmax cross-entropy that skips ignored pixels, plus
the auxiliary FCN head on layer 3 with weight 0.2 (PSPNet's deep supervision).

The network is built for the crop size (sizes are static in these models) and its
forward returns scores at that size, so the loss compares them with the crop's labels
pixel by pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .common import TrainConfig, color_jitter, normalise

IGNORE = 255
AUX_WEIGHT = 0.2


def augment(
    image_bgr: np.ndarray,
    label: np.ndarray,
    size: tuple[int, int],
    mean: tuple[float, ...],
    rng: np.random.RandomState,
    config: TrainConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale the image so that it fits ``size`` (as the letterbox of inference does) times
    a random factor in [min_scale, max_scale], flip if enabled, place it at a random
    position on a mean-colored ``size`` canvas (cropping what does not fit); labels follow
    with nearest-neighbour resizing and 255 outside the image. Returns (RGB float, labels)."""
    import cv2

    h, w = image_bgr.shape[:2]
    lo, hi = config.extra.get("min_scale", 0.75), config.extra.get("max_scale", 1.25)
    s = min(size[0] / h, size[1] / w) * rng.uniform(lo, hi)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    image = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    # pixel-centre aligned nearest neighbour (INTER_NEAREST is shifted by half a pixel)
    lab = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST_EXACT)
    if config.hflip and rng.rand() < 0.5:
        image, lab = image[:, ::-1], lab[:, ::-1]
    image = color_jitter(image[..., ::-1], rng, config.extra.get("color", 0.3))
    out = np.empty((size[0], size[1], 3), np.float32)
    out[:] = mean
    out_lab = np.full(size, IGNORE, np.uint8)
    # offset of the image on the canvas: any placement that keeps the overlap maximal
    oy = rng.randint(min(0, size[0] - nh), max(0, size[0] - nh) + 1)
    ox = rng.randint(min(0, size[1] - nw), max(0, size[1] - nw) + 1)
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + nh, size[0]), min(ox + nw, size[1])
    out[y0:y1, x0:x1] = image[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    out_lab[y0:y1, x0:x1] = lab[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out, out_lab


class SegmentationTask:
    """What the shared loop needs: batches, the loss, validation."""

    def __init__(self, net: Any, dataset: Any, config: TrainConfig, data: Any):
        import mxnet as mx

        self.net, self.dataset, self.config, self.data = net, dataset, config, data
        self.size = tuple(int(v) for v in data.input_size)
        if any(v % 8 for v in self.size):
            raise InvalidInputError(f"segmentation trains at a multiple of 8, not {self.size}")
        self.num_classes = len(dataset.classes)
        net.set_input_size(self.size)
        net.training_outputs = True
        net(mx.nd.zeros((1, 3, *self.size)))  # completes deferred initialisation (aux head too)

    def train_mode(self) -> None:
        self.net.training_outputs = True
        self.net.set_input_size(self.size)
        self.net.hybridize(static_alloc=True)

    def validate(self, float_model: Any, evaluate: Any, val: Any) -> dict[str, Any]:
        report = evaluate(float_model(self.net), val)
        self.train_mode()
        return {k: v for k, v in report.items() if k != "iou_per_class"}

    def batches(self, rng: np.random.RandomState, epoch: int):
        """(images NCHW float32, labels N×H×W float32 with 255 = ignore)."""
        cfg = self.config
        for batch in cfg.epoch_batches(rng.permutation(len(self.dataset)), epoch):
            xs, ys = [], []
            for i, sample_rng in batch:
                image, label = self.dataset[i]
                img, lab = augment(image, label, self.size, self.data.mean, sample_rng, cfg)
                xs.append(normalise(img, self.data.mean, self.data.std))
                ys.append(lab)
            yield np.stack(xs), np.stack(ys).astype(np.float32)

    def _cross_entropy(self, scores: Any, labels: Any) -> Any:
        """Mean over the labelled pixels of each sample (0 for a sample with none)."""
        from mxnet import nd

        valid = labels != IGNORE
        target = labels * valid  # ignored pixels pick class 0; masked out below
        logp = nd.log_softmax(scores, axis=1)
        picked = nd.pick(logp, target, axis=1)  # (N, H, W)
        total = -(picked * valid).sum(axis=(1, 2))
        return total / nd.maximum(valid.sum(axis=(1, 2)), 1)

    def losses(self, outputs: Any, targets: Any) -> Any:
        if isinstance(outputs, (list, tuple)):
            main, aux = outputs
            return self._cross_entropy(main, targets) + AUX_WEIGHT * self._cross_entropy(
                aux, targets
            )
        return self._cross_entropy(outputs, targets)

    @staticmethod
    def batch_accuracy(outputs: Any, targets: Any) -> float:
        main = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        pred = main.argmax(axis=1)
        valid = targets != IGNORE
        n = float(valid.sum().asscalar())
        return float(((pred == targets) * valid).sum().asscalar() / n) if n else 0.0
