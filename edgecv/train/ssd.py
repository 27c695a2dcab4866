"""SSD training: target assignment and the multibox loss (Liu et al. 2016, as GluonCV
trains it).

Targets: every ground truth first claims one prior of its own (bipartite: the pair with
the highest IoU left in the IoU matrix, greedily, so two boxes never share a prior), then
every other prior whose IoU with some ground truth reaches 0.5 becomes a positive of its
best one. Positives learn their box's class (background is 0) and its offsets from the
prior, centre-size encoded with the variances the model decodes with; the rest learn
background.

Loss: softmax cross-entropy on the positives and on the hardest negatives (3 per
positive, ranked by their background loss), smooth L1 on the positives' offsets, divided
by the batch's number of positives (at least 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .common import TrainConfig, normalise
from .detection import DetectorTask, augment

POSITIVE_IOU = 0.5
NEGATIVE_RATIO = 3


def corners(center_size: np.ndarray) -> np.ndarray:
    """(N, 4) cx, cy, w, h → x0, y0, x1, y1."""
    c, half = center_size[:, :2], center_size[:, 2:] / 2
    return np.concatenate([c - half, c + half], axis=1)


def encode_boxes(priors: np.ndarray, boxes: np.ndarray, variances: tuple[float, ...]) -> np.ndarray:
    """Offsets of corner ``boxes`` (N, 4) from centre-size ``priors`` (N, 4), row by row:
    the inverse of the model's decode (centre shift in prior sizes, log size ratio, each
    divided by its variance)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    pw, ph = priors[:, 2], priors[:, 3]
    return np.stack(
        [
            (cx - priors[:, 0]) / pw / variances[0],
            (cy - priors[:, 1]) / ph / variances[1],
            np.log(w / pw) / variances[2],
            np.log(h / ph) / variances[3],
        ],
        axis=1,
    ).astype(np.float32)


def match_priors(
    priors: np.ndarray,
    boxes: np.ndarray,
    variances: tuple[float, ...],
    positive_iou: float = POSITIVE_IOU,
) -> tuple[np.ndarray, np.ndarray]:
    """One image's targets: the class of every prior (0 background, else box class + 1)
    and its box offsets (zero for background). ``priors``: (N, 4) centre-size;
    ``boxes``: (G, ≥5) rows x0, y0, x1, y1, class."""
    from ..evaluate import box_iou

    n = len(priors)
    cls = np.zeros(n, np.float32)
    offsets = np.zeros((n, 4), np.float32)
    if len(boxes) == 0:
        return cls, offsets
    iou = box_iou(corners(priors), boxes[:, :4])  # (N, G)
    best_gt = iou.argmax(axis=1)
    positive = iou[np.arange(n), best_gt] >= positive_iou
    # bipartite: the highest pair left claims its prior, so every box gets one (greedy, as
    # GluonCV's BipartiteMatcher); a box overlapping no prior at all stays unmatched
    left = iou.copy()
    for _ in range(len(boxes)):
        p, g = np.unravel_index(np.argmax(left), left.shape)
        if left[p, g] <= 0:
            break
        best_gt[p], positive[p] = g, True
        left[p, :], left[:, g] = -1, -1
    matched = boxes[best_gt[positive]]
    cls[positive] = matched[:, 4] + 1
    offsets[positive] = encode_boxes(priors[positive], matched[:, :4], variances)
    return cls, offsets


def hard_negatives(loss: Any, positive: Any, ratio: float = NEGATIVE_RATIO) -> Any:
    """(B, N) mask of each image's ``ratio`` × positives negatives with the highest
    ``loss`` (NDArrays; the loss is ≥ 0, as the background cross-entropy is)."""
    from mxnet import autograd, nd

    with autograd.pause():
        score = nd.where(positive, -nd.ones_like(loss), loss.detach())
        rank = score.argsort(axis=1, is_ascend=False).argsort(axis=1)
        quota = positive.sum(axis=1, keepdims=True) * ratio
        return nd.broadcast_lesser(rank, quota) * (1 - positive)


def multibox_loss(cls_pred: Any, box_pred: Any, cls_t: Any, box_t: Any) -> Any:
    """Per-image terms (B,) whose mean is the batch's multibox loss: each image's
    classification + box loss, times B over the batch's positives (normalising by the
    batch's positives, not each image's, as the paper and GluonCV do)."""
    from mxnet import nd

    ce = -nd.pick(nd.log_softmax(cls_pred, axis=-1), cls_t, axis=-1)  # (B, N)
    positive = cls_t > 0
    selected = positive + hard_negatives(ce, positive)
    l_cls = (ce * selected).sum(axis=1)
    l_box = (nd.smooth_l1(box_pred - box_t, scalar=1.0) * positive.expand_dims(2)).sum(axis=(1, 2))
    n_pos = nd.maximum(positive.sum(), 1)
    return nd.broadcast_div(l_cls + l_box, n_pos) * cls_pred.shape[0]


class SSDTask(DetectorTask):
    def __init__(self, net: Any, dataset: Any, config: TrainConfig, data: Any):
        import mxnet as mx

        from ..zoo.ssd import VARIANCES

        self.net, self.dataset, self.config, self.data = net, dataset, config, data
        self.size = tuple(data.input_size)
        self.num_classes = len(dataset.classes)
        self.variances = VARIANCES  # the model's decode; training must encode the same way
        net.raw_outputs = True
        shape = (1, 3, *self.size)
        cls, _ = net(mx.nd.zeros(shape))  # completes deferred initialisation
        self.priors = net.priors(shape).astype(np.float32)
        if len(self.priors) != cls.shape[1]:
            raise InvalidInputError(
                f"{len(self.priors)} priors for {cls.shape[1]} predictions at {self.size}"
            )

    def load_backbone(self, path: str) -> None:
        """Copy a classification model's feature weights (same backbone) into the base
        network; the layers SSD adds after it keep their initialisation."""
        from ..zoo.ssd import CONFIGS

        spec = self.net.edgecv_meta.spec
        name = CONFIGS[spec.kwargs["config"]][0]
        if name.startswith("vgg"):
            raise InvalidInputError(
                f"{spec.name}: VGG-atrous backbones cannot load a classifier's weights"
            )
        self.copy_backbone(path, name, self.net.features.base)

    def targets(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One image's prior classes (N,) and box offsets (N, 4)."""
        return match_priors(self.priors, boxes, self.variances)

    def batches(self, rng: np.random.RandomState, epoch: int):
        cfg = self.config
        for batch in cfg.epoch_batches(rng.permutation(len(self.dataset)), epoch):
            xs, cls, offsets = [], [], []
            for i, sample_rng in batch:
                image, label = self.dataset[i]
                label = label[label[:, 5] == 0] if label.shape[1] > 5 else label
                img, boxes = augment(
                    image, label, self.size, self.data.mean, sample_rng, cfg, self.data.resize
                )
                xs.append(normalise(img, self.data.mean, self.data.std))
                c, o = self.targets(boxes)
                cls.append(c)
                offsets.append(o)
            yield np.stack(xs), (np.stack(cls), np.stack(offsets))

    def losses(self, outputs: Any, targets: Any) -> Any:
        return multibox_loss(*outputs, *targets)
