"""Faster R-CNN (Ren et al. 2015) on ResNet v1b/v1d with a stride-16 RoIAlign head, GluonCV
layout and presets (``faster_rcnn_resnet50_v1b_{voc,coco}``, ``faster_rcnn_resnet101_v1d_...``).

Two networks with the glue between them:

- stage 1, ``features`` (stem, layer1..layer3: stride 16) and the RPN head (``rpn``: a 3x3
  conv + ReLU, then 1x1 convs to an objectness score and four box offsets per anchor);
- proposals: anchors on the stride-16 grid (``rpn.anchor_generator``), offsets decoded
  (stds 1), clipped to the image, those narrower or lower than ``rpn_min_size`` (+1 pixel
  convention) dropped, the best ``rpn_pre_nms`` kept, class-agnostic NMS at 0.7, the first
  ``rpn_post_nms`` kept: the RoIs;
- RoIAlign (MXNet's ``contrib.ROIAlign``: 14x14 bins, scale 1/16, 2x2 samples per bin,
  ``aligned=False``) of the stride-16 features;
- stage 2, per RoI: ``top_features`` (layer4), a global average pool, ``class_predictor``
  (softmax over background + classes) and ``box_predictor`` (four offsets per class);
- per class: offsets decoded around the RoI (stds 0.1, 0.1, 0.2, 0.2; widths ``x2 - x1``),
  scores above 0.01, NMS within the class.

The forward (one image, inference) returns GluonCV's ``(ids, scores, boxes)``, shapes
(1, C * R, 1), (1, C * R, 1), (1, C * R, 4) for C classes and R = ``rpn_post_nms`` RoIs:
class by class, each class's NMS survivors best first, the rest -1. When NMS leaves fewer
than R proposals, GluonCV pads the RoIs with (-1, -1, -1, -1) and still runs them through
stage 2: their detections are zero-size boxes at (-1, -1) (kept here, as GluonCV does; the
C++ runtime drops them, they are not proposals).

``stage1`` and ``stage2`` are the two graphs a deployment compiles; the glue between them is
edgecv's C++ runtime (``runtime_cpp/src/rcnn.cc``), checked against this forward's MXNet ops.

Attribute tree as GluonCV's (``features``, ``top_features``, ``rpn.conv1`` / ``score`` /
``loc`` / ``anchor_generator.anchors``, ``class_predictor``, ``box_predictor``), so its
``.params`` files load unchanged. Only reachable from Python (``faster_rcnn``): not in the
catalog until the two-graph artifact compiles and runs end to end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mxnet import init
from mxnet.gluon import HybridBlock, nn

from .layers import SCORE_CUT
from .resnet import ResNetV1b

STRIDE = 16  # input pixels per cell of the features the RPN and RoIAlign read
BOX_STDS = (0.1, 0.1, 0.2, 0.2)  # the second stage's offsets are divided by these in training
ROI_SAMPLE_RATIO = 2  # RoIAlign samples per bin side


@dataclass(frozen=True)
class RcnnConfig:
    """GluonCV's Faster R-CNN presets: what differs between datasets, then what does not."""

    classes: int
    nms_threshold: float  # per-class NMS of the final detections
    nms_topk: int  # per class, candidates kept before NMS; -1: all
    box_clip: float | None  # log-size offsets are capped at this before exp (None: not)
    rpn_post_nms: int  # RoIs per image (R)
    rpn_min_size: int  # proposals narrower or lower than this (pixels, +1) are dropped
    rpn_pre_nms: int = 6000
    rpn_nms_threshold: float = 0.7
    rpn_channels: int = 1024
    base_size: int = 16
    scales: tuple[float, ...] = (2, 4, 8, 16, 32)
    ratios: tuple[float, ...] = (0.5, 1, 2)
    alloc_size: int = 128  # anchors stored for feature maps up to 128x128 (inputs to 2048)
    roi_size: int = 14


CONFIGS = {
    "voc": RcnnConfig(20, 0.3, 400, None, 300, 16),
    "coco": RcnnConfig(80, 0.5, -1, 4.14, 1000, 1),
}


def base_anchors(stride: int, base_size: int, scales, ratios) -> np.ndarray:
    """The anchors of one cell, (len(ratios) * len(scales), 4) corners, ratio-major: a
    ``stride``-wide square cell (pixel centres 0 .. stride - 1) reshaped to each ratio h/w
    at about the same area (whole widths and heights, rounded half to even), then each
    scaled by ``scale * base_size / stride`` around the cell's centre; corners at centre
    -+ (size - 1) / 2 (the +1 pixel convention of the original Faster R-CNN)."""
    centre = (stride - 1) / 2
    out = []
    for ratio in ratios:
        w = np.round(np.sqrt(stride * stride / ratio))
        h = np.round(w * ratio)
        for scale in scales:
            f = scale * base_size / stride
            out.append([centre - (w * f - 1) / 2, centre - (h * f - 1) / 2])
            out[-1] += [centre + (w * f - 1) / 2, centre + (h * f - 1) / 2]
    return np.array(out, dtype=np.float64)


def grid_anchors(stride: int, base_size: int, scales, ratios, height: int, width: int):
    """All anchors of a (height, width) feature map, (1, 1, height, width, 4A) float32 in
    (row, column, anchor) order: the cell's anchors shifted by (column, row) * stride."""
    cell = base_anchors(stride, base_size, scales, ratios)
    ys, xs = np.meshgrid(np.arange(height) * stride, np.arange(width) * stride, indexing="ij")
    shift = np.stack([xs, ys, xs, ys], axis=-1)[:, :, None, :]  # (H, W, 1, 4)
    return (shift + cell).reshape(1, 1, height, width, -1).astype(np.float32)


class _AnchorGenerator(HybridBlock):
    """The anchors of an ``alloc`` x ``alloc`` grid, a constant (GluonCV's parameter files
    hold it), cut to the feature map's size: (1, H * W * A, 4)."""

    def __init__(self, config: RcnnConfig):
        super().__init__()
        anchors = grid_anchors(
            STRIDE, config.base_size, config.scales, config.ratios, config.alloc_size,
            config.alloc_size,
        )  # fmt: skip
        with self.name_scope():
            self.anchors = self.params.get_constant("anchors", anchors)

    def hybrid_forward(self, F, x, anchors):  # noqa: N803
        return F.slice_like(anchors, x * 0, axes=(2, 3)).reshape((1, -1, 4))


class _RPN(HybridBlock):
    """The RPN head: ``conv1`` (3x3 conv + ReLU), ``score`` (A objectness logits per cell) and
    ``loc`` (4A box offsets), and the ``anchor_generator``."""

    def __init__(self, config: RcnnConfig):
        super().__init__()
        depth = len(config.scales) * len(config.ratios)
        weights = init.Normal(0.01)
        with self.name_scope():
            self.anchor_generator = _AnchorGenerator(config)
            self.conv1 = nn.HybridSequential(prefix="")
            self.conv1.add(
                nn.Conv2D(config.rpn_channels, 3, 1, 1, weight_initializer=weights),
                nn.Activation("relu"),
            )
            self.score = nn.Conv2D(depth, 1, weight_initializer=weights)
            self.loc = nn.Conv2D(depth * 4, 1, weight_initializer=weights)

    def hybrid_forward(self, F, x):  # noqa: N803
        """Stride-16 features → objectness (1, A, H, W) after the sigmoid, box offsets
        (1, 4A, H, W): anchor a's (dx, dy, dw, dh) in channels 4a .. 4a + 3."""
        x = self.conv1(x)
        return F.sigmoid(self.score(x)), self.loc(x)


class _Stage(HybridBlock):
    """One deployable graph of ``net`` on its blocks (shared children: the same parameters,
    exported with the graph): ``"1"``, image → (features, RPN scores, RPN offsets); ``"2"``,
    pooled RoI features (R, 1024, 14, 14) → class probabilities (R, C + 1) with background
    first, box offsets (R, 4C)."""

    _BLOCKS = {"1": ("features", "rpn"), "2": ("top_features", "class_predictor", "box_predictor")}

    def __init__(self, net: FasterRCNN, stage: str):
        super().__init__(prefix=f"{net.prefix}stage{stage}_")
        self._stage = stage
        for name in self._BLOCKS[stage]:
            setattr(self, name, getattr(net, name))

    def hybrid_forward(self, F, x):  # noqa: N803
        return (
            FasterRCNN.stage1(self, F, x) if self._stage == "1" else FasterRCNN.stage2(self, F, x)
        )


class FasterRCNN(HybridBlock):
    """``features`` (to stride 16), ``top_features`` (layer4), ``rpn``, ``class_predictor``,
    ``box_predictor``; ``config`` holds the proposal, RoIAlign and NMS settings."""

    def __init__(self, backbone: ResNetV1b, config: RcnnConfig):
        super().__init__()
        self.config = config
        self.num_classes = config.classes
        with self.name_scope():
            parts = backbone.stem_and_layers()
            self.features = nn.HybridSequential(prefix="")
            self.features.add(*(parts[k] for k in ("conv1", "bn1", "relu", "maxpool")))
            self.features.add(parts["layer1"], parts["layer2"], parts["layer3"])
            self.top_features = nn.HybridSequential(prefix="")
            self.top_features.add(parts["layer4"])
            self.rpn = _RPN(config)
            self.class_predictor = nn.Dense(
                config.classes + 1, weight_initializer=init.Normal(0.01)
            )
            self.box_predictor = nn.Dense(config.classes * 4, weight_initializer=init.Normal(0.001))

    def stages(self) -> tuple[HybridBlock, HybridBlock]:
        """The two graphs a deployment compiles (stage 1, stage 2), on this network's
        parameters."""
        return _Stage(self, "1"), _Stage(self, "2")

    def deploy_ops(self) -> list[dict]:
        """The glue between the stages as the manifest's postprocess ops, which the C++
        runtime parses (``rpn_proposals``, ``roi_align``, ``rcnn_decode``, then its ``nms``
        within each class: scores above 0.01, all kept, as GluonCV's forward returns)."""
        c = self.config
        clip = c.box_clip if c.box_clip is not None else -1.0
        return [
            {
                "op": "rpn_proposals",
                "stride": STRIDE,
                "base_size": c.base_size,
                "scales": list(c.scales),
                "ratios": list(c.ratios),
                "pre_nms": c.rpn_pre_nms,
                "post_nms": min(c.rpn_post_nms, c.rpn_pre_nms),
                "nms_threshold": c.rpn_nms_threshold,
                "min_size": c.rpn_min_size,
                "box_clip": clip,
            },
            {
                "op": "roi_align",
                "pooled_height": c.roi_size,
                "pooled_width": c.roi_size,
                "spatial_scale": 1.0 / STRIDE,
                "sample_ratio": ROI_SAMPLE_RATIO,
                "aligned": False,
            },
            {
                "op": "rcnn_decode",
                "num_classes": c.classes,
                "stds": list(BOX_STDS),
                "box_clip": clip,
                "topk": c.nms_topk,
            },
            {
                "op": "nms",
                "iou_threshold": c.nms_threshold,
                "score_threshold": SCORE_CUT,
                "topk": -1,
                "max_detections": -1,
                "class_agnostic": False,
            },
        ]

    # stage1 and stage2 read only the blocks _Stage shares, so that they also run on a _Stage
    def stage1(self, F, x):  # noqa: N803
        """Image → stride-16 features, RPN objectness (1, A, H, W), RPN offsets (1, 4A, H, W)."""
        features = self.features(x)
        return (features, *self.rpn(features))

    def stage2(self, F, pooled):  # noqa: N803
        """Pooled RoI features (R, 1024, 14, 14) → probabilities (R, C + 1), offsets (R, 4C)."""
        x = F.Pooling(self.top_features(pooled), global_pool=True, kernel=(1, 1), pool_type="avg")
        return F.softmax(self.class_predictor(x), axis=-1), self.box_predictor(x)

    def proposals(self, F, scores, offsets, anchors, image):  # noqa: N803
        """RPN outputs → the RoIs (1, R, 4): decoded, clipped to ``image``'s size, small
        ones dropped, best ``rpn_pre_nms``, NMS, first R (rows of -1 when fewer survive)."""
        c = self.config
        # (1, A, H, W) and (1, 4A, H, W) → (1, H * W * A, ...) in the anchors' order
        scores = F.transpose(scores, (0, 2, 3, 1)).reshape((1, -1, 1))
        offsets = F.transpose(offsets, (0, 2, 3, 1)).reshape((1, -1, 4))
        clip = c.box_clip if c.box_clip is not None else -1.0
        boxes = F.contrib.box_decode(
            offsets, anchors, 1.0, 1.0, 1.0, 1.0, clip=clip, format="corner"
        )
        # the image's (width, height, width, height) bounds the corners
        size = F.reverse(F.slice_axis(F.shape_array(image), axis=0, begin=2, end=4), axis=0)
        bound = F.cast(F.tile(size, reps=(2,)), "float32").reshape((1, 1, 4))
        boxes = F.broadcast_minimum(F.maximum(boxes, 0.0), bound)
        x1, y1, x2, y2 = F.split(boxes, axis=-1, num_outputs=4)
        small = ((x2 - x1 + 1) < c.rpn_min_size) + ((y2 - y1 + 1) < c.rpn_min_size)
        scores = F.where(small, -F.ones_like(scores), scores)
        kept = F.contrib.box_nms(
            F.concat(scores, boxes, dim=-1),
            overlap_thresh=c.rpn_nms_threshold,
            topk=c.rpn_pre_nms,
            coord_start=1,
            score_index=0,
            id_index=-1,
            force_suppress=True,
        )
        post = min(c.rpn_post_nms, c.rpn_pre_nms)
        return F.slice_axis(kept, axis=1, begin=0, end=post).slice_axis(axis=-1, begin=1, end=5)

    def detections(self, F, probs, offsets, rois):  # noqa: N803
        """Stage 2's outputs for R RoIs (1, R, 4) → GluonCV's (ids, scores, boxes)."""
        c = self.config
        classes = c.classes
        scores = F.slice_axis(probs, axis=-1, begin=1, end=None)  # (R, C)
        ids = F.broadcast_add(F.zeros_like(scores), F.arange(classes).reshape((1, classes)))
        valid = scores > SCORE_CUT
        ids = F.where(valid, ids, -F.ones_like(ids)).transpose().expand_dims(-1)  # (C, R, 1)
        scores = F.where(valid, scores, F.zeros_like(scores)).transpose().expand_dims(-1)
        offsets = F.transpose(offsets.reshape((0, classes, 4)), (1, 0, 2))  # (C, R, 4)
        clip = c.box_clip if c.box_clip is not None else -1.0
        boxes = F.contrib.box_decode(offsets, rois, *BOX_STDS, clip=clip, format="corner")
        kept = F.contrib.box_nms(
            F.concat(ids, scores, boxes, dim=-1),
            overlap_thresh=c.nms_threshold,
            topk=c.nms_topk,
            valid_thresh=1e-4,
            id_index=0,
            score_index=1,
            coord_start=2,
        ).reshape((1, -1, 6))
        return (
            F.slice_axis(kept, axis=-1, begin=0, end=1),
            F.slice_axis(kept, axis=-1, begin=1, end=2),
            F.slice_axis(kept, axis=-1, begin=2, end=6),
        )

    def hybrid_forward(self, F, x):  # noqa: N803
        """One image (1, 3, H, W) → (ids, scores, boxes), see the module's docstring."""
        features, scores, offsets = self.stage1(F, x)
        anchors = self.rpn.anchor_generator(features)
        rois = self.proposals(F, scores, offsets, anchors, x)  # (1, R, 4)
        indexed = F.concat(F.zeros_like(F.slice_axis(rois, axis=-1, begin=0, end=1)), rois, dim=-1)
        size = (self.config.roi_size, self.config.roi_size)
        pooled = F.contrib.ROIAlign(
            features, indexed.reshape((-1, 5)), size, 1.0 / STRIDE, sample_ratio=ROI_SAMPLE_RATIO
        )
        probs, box_offsets = self.stage2(F, pooled)
        return self.detections(F, probs, box_offsets, rois)


def faster_rcnn(
    dataset: str, depth: int = 50, version: str = "v1b", classes=None, **settings
) -> FasterRCNN:
    """Faster R-CNN on resnet{depth}_{version} (v1b, or v1d: deep stem, average-pool
    projections) with GluonCV's ``dataset`` preset (voc, coco); ``classes`` replaces the
    preset's class count, ``settings`` other fields of :class:`RcnnConfig` (e.g. fewer RoIs,
    ``rpn_post_nms``, for a quick test)."""
    if dataset not in CONFIGS:
        raise ValueError(f"unknown Faster R-CNN dataset {dataset!r} (known: {', '.join(CONFIGS)})")
    if version not in ("v1b", "v1d"):
        raise ValueError(f"Faster R-CNN takes ResNet v1b or v1d, not {version!r}")
    unknown = set(settings) - set(RcnnConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown Faster R-CNN settings: {', '.join(sorted(unknown))}")
    if classes is not None:
        settings["classes"] = int(classes)
    config = RcnnConfig(**{**CONFIGS[dataset].__dict__, **settings})
    deep = version == "v1d"
    return FasterRCNN(ResNetV1b(depth, deep_stem=deep, avg_down=deep), config)
