"""Top-down pose training: SimpleBaseline's recipe (Xiao et al. 2018).

Every person instance (not crowd, at least one labelled keypoint) is a sample: the crop
the runtime would take around its box (C++ ``person_crop``: the box widened to the input's
aspect ratio, enlarged 1.25x), jittered in scale and rotation, optionally mirrored, and
resampled to the input size. Targets are one Gaussian per keypoint (``sigma`` 2 heatmap
pixels) on the network's heatmap grid, with a weight per keypoint (0 for an unlabelled one
or one outside the crop); the loss is the weighted mean squared error, halved
(SimpleBaseline's ``JointsMSELoss``). SimpleBaseline trains it with Adam (lr 1e-3, no
weight decay): pass ``optimizer="adam"`` in the :class:`TrainConfig`.

Settings in ``config.extra``: ``sigma`` (2.0), ``scale_jitter`` (0.25: crop scale within
1 ± 0.25), ``rotation`` (30: degrees within ±30), ``rotate_prob`` (0.6). ``config.hflip``
mirrors half of the crops when the keypoint names hold left/right pairs (COCO's
``left_eye``/``right_eye``, the digits' ``left``/``right``), swapping their heatmaps; a set
without such names is never mirrored, as its mirror image could not be labelled.

An epoch is one seeded shuffle of the person instances (``num_samples``, which the shared
loop plans its batches and learning-rate schedule from).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .common import TrainConfig, normalise


def flip_pairs(names: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of keypoints that trade places in a mirror image: names equal but for
    ``left`` ↔ ``right``."""
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, name in enumerate(names):
        if "left" in name:
            j = index.get(name.replace("left", "right"))
            if j is not None and j != i:
                pairs.append((i, j))
    return pairs


def crop_transform(
    crop: Sequence[float],
    input_size: tuple[int, int],
    scale: float = 1.0,
    angle: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """The 2x3 affine map from image pixels to network input pixels for a person crop
    ``(x0, y0, width, height)``, zoomed out by ``scale`` and rotated by ``angle`` degrees
    about the crop's centre, then mirrored (input column u ↔ width - 1 - u) if ``flip``.

    With scale 1, angle 0 and no flip it is the runtime's crop: input pixel u samples image
    point x0 + u * width / input width (see C++ ``CropResize``)."""
    x0, y0, cw, ch = (float(v) for v in crop)
    h_in, w_in = input_size
    t = np.deg2rad(angle)
    rotate = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    a = np.diag([w_in / (scale * cw), h_in / (scale * ch)]) @ rotate
    center = np.array([x0 + cw / 2, y0 + ch / 2])
    m = np.hstack([a, (np.array([w_in / 2, h_in / 2]) - a @ center)[:, None]])
    if flip:
        m = np.array([[-1.0, 0.0, w_in - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
    return m


def heatmap_targets(
    points: np.ndarray, visible: np.ndarray, shape: tuple[int, int], sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Target heatmaps (K, H, W) float32 for keypoints ``points`` (K, 2) in heatmap pixels:
    exp(-d² / 2σ²) around each point (its peak 1 at the point itself, sub-pixel centres
    kept), and weights (K,) float32: 1 for a labelled keypoint (``visible`` > 0) within the
    grid's pixels, else 0 with an all-zero heatmap."""
    h, w = shape
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    inside = (
        (np.asarray(visible).reshape(-1) > 0)
        & (pts[:, 0] >= -0.5)
        & (pts[:, 0] <= w - 0.5)
        & (pts[:, 1] >= -0.5)
        & (pts[:, 1] <= h - 0.5)
    )
    gx = np.exp(-((np.arange(w)[None, :] - pts[:, :1]) ** 2) / (2 * sigma**2))  # (K, W)
    gy = np.exp(-((np.arange(h)[None, :] - pts[:, 1:]) ** 2) / (2 * sigma**2))  # (K, H)
    maps = gy[:, :, None] * gx[:, None, :] * inside[:, None, None]
    return maps.astype(np.float32), inside.astype(np.float32)


class PoseTask:
    """What the shared loop needs of pose training: batches, the loss, validation."""

    def __init__(self, net: Any, dataset: Any, config: TrainConfig, data: Any):
        import mxnet as mx

        from ..ops import preprocess_ops

        self.net, self.dataset, self.config, self.data = net, dataset, config, data
        self.size = tuple(data.input_size)
        if any(s % 32 for s in self.size):
            raise InvalidInputError(
                f"pose models train at input sides that are multiples of 32 (as they compile), "
                f"not {self.size[0]}x{self.size[1]}"
            )
        heatmaps = net(mx.nd.zeros((1, 3, *self.size)))  # completes deferred initialisation
        k = len(dataset.classes)
        if heatmaps.shape[1] != k:
            raise InvalidInputError(
                f"the model has {heatmaps.shape[1]} joints, the dataset {k} keypoints"
            )
        self.heatmap_size = tuple(heatmaps.shape[2:])
        ops = preprocess_ops(data)
        self.crop_scale = next(op["scale"] for op in ops if op["op"] == "person_crop")
        extra = config.extra
        self.sigma = float(extra.get("sigma", 2.0))
        self.scale_jitter = float(extra.get("scale_jitter", 0.25))
        self.rotation = float(extra.get("rotation", 30.0))
        self.rotate_prob = float(extra.get("rotate_prob", 0.6))
        pairs = flip_pairs(dataset.classes)
        self.flip_pairs = pairs if config.hflip and pairs else None
        self.samples = [
            (i, int(j))
            for i, lab in enumerate(dataset.labels())
            for j in np.flatnonzero(~lab.ignore)
        ]
        if not self.samples:
            raise InvalidInputError("the dataset holds no person with labelled keypoints")

    def sample(
        self, image: np.ndarray, box: np.ndarray, keypoints: np.ndarray, rng: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One person: (input CHW float32, target heatmaps (K, H, W), weights (K,))."""
        import cv2

        from .. import _runtime

        h_in, w_in = self.size
        h, w = image.shape[:2]
        crop = _runtime.person_crop([float(v) for v in box], w_in, h_in, self.crop_scale, w, h)
        scale = 1 + rng.uniform(-self.scale_jitter, self.scale_jitter)
        angle = rng.uniform(-self.rotation, self.rotation)
        if rng.rand() >= self.rotate_prob:
            angle = 0.0
        flip = rng.rand() < 0.5 and self.flip_pairs is not None
        m = crop_transform(crop, self.size, scale, angle, flip)
        # bilinear with zeros outside the image, as the runtime's crop
        patch = cv2.warpAffine(
            image, m, (w_in, h_in), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        if self.data.color == "RGB":
            patch = patch[..., ::-1]
        points = keypoints[:, :2].astype(np.float64) @ m[:, :2].T + m[:, 2]
        visible = keypoints[:, 2].copy()
        if flip:
            for i, j in self.flip_pairs or ():
                points[[i, j]], visible[[i, j]] = points[[j, i]], visible[[j, i]]
        hh, hw = self.heatmap_size
        maps, weights = heatmap_targets(
            points * [hw / w_in, hh / h_in], visible, (hh, hw), self.sigma
        )
        return normalise(patch, self.data.mean, self.data.std), maps, weights

    def batches(self, rng: np.random.RandomState, epoch: int):
        """(inputs NCHW float32, (heatmaps NKHW, weights NK11)) batches of one epoch."""
        cfg = self.config
        n_batches = cfg.batches_per_epoch(self.num_samples)
        need = n_batches * cfg.global_batch
        rounds = max(1, -(-need // len(self.samples)))
        order = np.concatenate([rng.permutation(len(self.samples)) for _ in range(rounds)])
        for batch in cfg.epoch_batches(order, epoch, n_batches):
            xs, maps, weights = [], [], []
            for s, sample_rng in batch:
                i, j = self.samples[s]
                image, label = self.dataset[i]
                x, m, wt = self.sample(image, label.boxes[j], label.keypoints[j], sample_rng)
                xs.append(x)
                maps.append(m)
                weights.append(wt)
            yield np.stack(xs), (np.stack(maps), np.stack(weights)[:, :, None, None])

    @property
    def num_samples(self) -> int:
        """Training samples per epoch: person instances, not images."""
        return len(self.samples)

    def train_mode(self) -> None:
        self.net.hybridize(static_alloc=True)

    def validate(self, float_model: Any, evaluate: Any, val: Any) -> dict[str, Any]:
        report = evaluate(float_model(self.net), val)
        self.train_mode()
        return report

    def losses(self, outputs: Any, targets: Any) -> Any:
        """Per sample: half the mean over keypoints and pixels of the squared, weighted error."""
        from mxnet import nd

        heatmaps, weights = targets
        diff = nd.broadcast_mul(outputs - heatmaps, weights)
        return 0.5 * (diff * diff).mean(axis=(1, 2, 3))
