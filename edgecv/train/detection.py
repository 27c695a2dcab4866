"""YOLOv3 training: augmentation, target assignment and loss (Redmon & Farhadi 2018,
with the refinements GluonCV's recipe uses).

Targets: every ground-truth box goes to the one anchor (of nine, over the three
scales) whose shape fits it best by IoU, in the grid cell holding its center; it
supervises that anchor's center (sigmoid offsets in the cell, binary cross-entropy), size
(log of box/anchor, L1), objectness and classes (binary cross-entropy). Box terms are
weighted by 2 - box area / image area, so small boxes count more. Anchors with no
ground truth learn objectness 0, except those whose predicted box already overlaps a
ground truth with IoU > 0.7: they are ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .common import TrainConfig, color_jitter, normalise

IGNORE_IOU = 0.7


def _crop(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """SSD-style random crop: a window (30-100% of each side, aspect 1/2..2) that keeps
    some box with IoU ≥ a random minimum; boxes whose center leaves the window drop out."""
    from ..evaluate import box_iou

    h, w = image.shape[:2]
    min_iou = rng.choice([-1, 0.1, 0.3, 0.5, 0.7, 0.9])
    if min_iou < 0 or len(boxes) == 0:
        return image, boxes
    for _ in range(50):
        scale = rng.uniform(0.3, 1.0)
        aspect = np.clip(rng.uniform(0.5, 2.0), scale * scale, 1 / (scale * scale))
        cw, ch = int(w * scale * np.sqrt(aspect)), int(h * scale / np.sqrt(aspect))
        if cw < 8 or ch < 8 or cw > w or ch > h:
            continue
        x0, y0 = rng.randint(0, w - cw + 1), rng.randint(0, h - ch + 1)
        window = np.array([[x0, y0, x0 + cw, y0 + ch]], np.float32)
        if box_iou(boxes[:, :4], window).max() < min_iou:
            continue
        centers = (boxes[:, :2] + boxes[:, 2:4]) / 2
        inside = (
            (centers[:, 0] > x0)
            & (centers[:, 0] < x0 + cw)
            & (centers[:, 1] > y0)
            & (centers[:, 1] < y0 + ch)
        )
        if not inside.any():
            continue
        kept = boxes[inside].copy()
        kept[:, [0, 2]] = np.clip(kept[:, [0, 2]] - x0, 0, cw)
        kept[:, [1, 3]] = np.clip(kept[:, [1, 3]] - y0, 0, ch)
        return image[y0 : y0 + ch, x0 : x0 + cw], kept
    return image, boxes


def augment(
    image_bgr: np.ndarray,
    label: np.ndarray,
    size: tuple[int, int],
    mean: tuple[float, ...],
    rng: np.random.RandomState,
    config: TrainConfig,
    resize: str = "letterbox",
) -> tuple[np.ndarray, np.ndarray]:
    """Color distortion, random expand (zoom out onto a mean-colored canvas), random
    crop, optional flip, then letterbox to ``size`` (``resize="stretch"``: resize to it, as
    SSD's preprocessing does). Returns (float RGB image, boxes)."""
    import cv2

    image = color_jitter(image_bgr[..., ::-1], rng, config.extra.get("color", 0.3))
    boxes = label[:, :5].astype(np.float32).copy()
    max_expand = config.extra.get("max_expand", 1.5)
    if max_expand > 1 and rng.rand() < 0.5:
        h, w = image.shape[:2]
        r = rng.uniform(1, max_expand)
        eh, ew = int(h * r), int(w * r)
        y0, x0 = rng.randint(0, eh - h + 1), rng.randint(0, ew - w + 1)
        canvas = np.empty((eh, ew, 3), np.float32)
        canvas[:] = mean
        canvas[y0 : y0 + h, x0 : x0 + w] = image
        image = canvas
        boxes[:, [0, 2]] += x0
        boxes[:, [1, 3]] += y0
    image, boxes = _crop(image, boxes, rng)
    h, w = image.shape[:2]
    if config.hflip and rng.rand() < 0.5:
        image = image[:, ::-1]
        boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    if resize == "stretch":
        out = cv2.resize(np.ascontiguousarray(image), size[::-1], interpolation=cv2.INTER_LINEAR)
        boxes[:, :4] *= np.array([size[1] / w, size[0] / h] * 2, np.float32)
    else:
        scale = min(size[0] / h, size[1] / w)
        nh, nw = int(round(h * scale)), int(round(w * scale))
        resized = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=cv2.INTER_LINEAR)
        out = np.empty((size[0], size[1], 3), np.float32)
        out[:] = mean
        oy, ox = (size[0] - nh) // 2, (size[1] - nw) // 2
        out[oy : oy + nh, ox : ox + nw] = resized
        boxes[:, :4] = boxes[:, :4] * scale + np.array([ox, oy, ox, oy], np.float32)
    keep = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
    return out, boxes[keep]


class DetectorTask:
    """What YOLOv3 and SSD training share: raw outputs while training, validation by the
    evaluation code, a backbone started from one of edgecv's classifiers."""

    net: Any

    def copy_backbone(self, path: str, name: str, block: Any) -> None:
        """Copy classification model ``name``'s feature weights (a ``.params`` file at
        ``path``) into ``block``, parameter by parameter in order."""
        import mxnet as mx

        from .. import zoo

        spec = self.net.edgecv_meta.spec
        saved = mx.nd.load(str(path))
        out_w = [v for k, v in saved.items() if k.endswith("output.weight")]
        if not out_w:
            raise InvalidInputError(f"{path} is not a {name} classification weights file")
        classifier = zoo.get_model(name, pretrained=path, classes=int(out_w[0].shape[0]))
        src = list(classifier.features.collect_params().values())
        dst = list(block.collect_params().values())
        if len(src) < len(dst) or any(s.shape != d.shape for s, d in zip(src, dst, strict=False)):
            raise InvalidInputError(f"{path}: {name} features do not match {spec.name}'s backbone")
        for s, d in zip(src, dst, strict=False):
            d.set_data(s.data())

    def train_mode(self) -> None:
        self.net.raw_outputs = True
        self.net.hybridize(static_alloc=True)

    def validate(self, float_model: Any, evaluate: Any, val: Any) -> dict[str, Any]:
        report = evaluate(float_model(self.net), val)
        self.train_mode()
        return {k: v for k, v in report.items() if k != "voc07_ap_per_class"}


class YoloTask(DetectorTask):
    def __init__(self, net: Any, dataset: Any, config: TrainConfig, data: Any):
        import mxnet as mx

        self.net, self.dataset, self.config, self.data = net, dataset, config, data
        self.size = tuple(data.input_size)
        if any(s % 32 for s in self.size):
            raise InvalidInputError(f"YOLOv3 trains at a multiple of 32, not {self.size}")
        self.num_classes = len(dataset.classes)
        self.max_boxes = int(config.extra.get("max_boxes", 50))
        net.raw_outputs = True
        outs = net(mx.nd.zeros((1, 3, *self.size)))  # completes deferred initialisation
        # per output (stride 32, 16, 8): grid shape, anchors; flattened as (cell, anchor)
        self.scales = []
        offsets, anchors, strides = [], [], []
        for raw, head in zip(outs, net.yolo_outputs, strict=True):
            gh, gw = raw.shape[2:]
            a = head.anchor_values().reshape(-1, 2)
            self.scales.append((gh, gw, head.stride, a))
            gy, gx = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
            cells = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
            offsets.append(np.repeat(cells, len(a), axis=0))
            anchors.append(np.tile(a, (gh * gw, 1)))
            strides.append(np.full((gh * gw * len(a), 1), head.stride, np.float32))
        self.offsets = np.concatenate(offsets)
        self.anchor_wh = np.concatenate(anchors).astype(np.float32)
        self.strides = np.concatenate(strides)
        self.n_pred = len(self.offsets)
        self._consts: dict[Any, tuple[Any, Any, Any]] = {}
        # objectness starts near 1% (most anchors see background): a stable start
        for head in net.yolo_outputs:
            bias = head.prediction.bias
            b = bias.data().asnumpy().reshape(head.num_anchors, -1)
            b[:, 4] = -4.0
            bias.set_data(mx.nd.array(b.ravel()))

    def load_backbone(self, path: str) -> None:
        """Copy a classification model's feature weights (same backbone) into the stages."""
        spec = self.net.edgecv_meta.spec
        kind = spec.kwargs.get("backbone")
        name = (
            "darknet53" if kind == "darknet53" else f"mobilenet{spec.kwargs.get('multiplier', 1.0)}"
        )
        self.copy_backbone(path, name, self.net.stages)

    def targets(self, boxes: np.ndarray) -> tuple[np.ndarray, ...]:
        """One image's targets over all predictions: objectness, center, log-size, box
        weight, classes; and the padded ground-truth boxes."""
        n, c = self.n_pred, self.num_classes
        obj = np.zeros(n, np.float32)
        center = np.zeros((n, 2), np.float32)
        size = np.zeros((n, 2), np.float32)
        weight = np.zeros((n, 1), np.float32)
        cls = np.zeros((n, c), np.float32)
        all_anchors = np.concatenate([s[3] for s in self.scales])
        base = np.cumsum([0] + [gh * gw * len(a) for gh, gw, _, a in self.scales])
        per_scale = [len(s[3]) for s in self.scales]
        img_area = float(self.size[0] * self.size[1])
        for x0, y0, x1, y1, k in boxes[:, :5]:
            w, h = x1 - x0, y1 - y0
            inter = np.minimum(w, all_anchors[:, 0]) * np.minimum(h, all_anchors[:, 1])
            iou = inter / (w * h + all_anchors[:, 0] * all_anchors[:, 1] - inter)
            best = int(np.argmax(iou))
            s = int(np.searchsorted(np.cumsum(per_scale), best, side="right"))
            a = best - sum(per_scale[:s])
            gh, gw, stride, anchors = self.scales[s]
            cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
            gx, gy = min(int(cx), gw - 1), min(int(cy), gh - 1)
            i = base[s] + (gy * gw + gx) * len(anchors) + a
            obj[i] = 1
            center[i] = (cx - gx, cy - gy)
            size[i] = np.log([w / anchors[a, 0], h / anchors[a, 1]])
            weight[i] = 2 - w * h / img_area
            cls[i] = 0
            cls[i, int(k)] = 1
        gt = np.zeros((self.max_boxes, 4), np.float32)
        gt[: min(len(boxes), self.max_boxes)] = boxes[: self.max_boxes, :4]
        return obj, center, size, weight, cls, gt

    def batches(self, rng: np.random.RandomState, epoch: int):
        cfg = self.config
        for batch in cfg.epoch_batches(rng.permutation(len(self.dataset)), epoch):
            xs, ts = [], []
            for i, sample_rng in batch:
                image, label = self.dataset[i]
                label = label[label[:, 5] == 0] if label.shape[1] > 5 else label
                img, boxes = augment(image, label, self.size, self.data.mean, sample_rng, cfg)
                xs.append(normalise(img, self.data.mean, self.data.std))
                ts.append(self.targets(boxes))
            yield np.stack(xs), tuple(np.stack(t) for t in zip(*ts, strict=True))

    def _constants(self, ctx: Any) -> tuple[Any, Any, Any]:
        import mxnet as mx

        if ctx not in self._consts:
            self._consts[ctx] = tuple(
                mx.nd.array(a, ctx=ctx).expand_dims(0)
                for a in (self.offsets, self.anchor_wh, self.strides)
            )
        return self._consts[ctx]

    def losses(self, outputs: Any, targets: Any) -> Any:
        from mxnet import nd

        obj_t, center_t, size_t, weight, cls_t, gt = targets
        per_scale = []
        for raw, head in zip(outputs, self.net.yolo_outputs, strict=True):
            a, c = head.num_anchors, head.num_classes
            per_scale.append(
                raw.reshape((0, a * (5 + c), -1)).transpose((0, 2, 1)).reshape((0, -1, 5 + c))
            )
        pred = nd.concat(*per_scale, dim=1)  # (B, N, 5 + C)
        offsets, anchor_wh, strides = self._constants(pred.context)

        # predicted boxes (no gradient) against every ground truth: which negatives to ignore
        p = nd.stop_gradient(pred)
        xy = (nd.sigmoid(p.slice_axis(axis=2, begin=0, end=2)) + offsets) * strides
        wh = nd.exp(nd.clip(p.slice_axis(axis=2, begin=2, end=4), -10, 10)) * anchor_wh
        lt = nd.broadcast_maximum(
            (xy - wh / 2).expand_dims(2), gt.slice_axis(axis=2, begin=0, end=2).expand_dims(1)
        )
        rb = nd.broadcast_minimum(
            (xy + wh / 2).expand_dims(2), gt.slice_axis(axis=2, begin=2, end=4).expand_dims(1)
        )
        inter = nd.relu(rb - lt).prod(axis=3)  # (B, N, G)
        gt_area = (
            gt.slice_axis(axis=2, begin=2, end=4) - gt.slice_axis(axis=2, begin=0, end=2)
        ).prod(axis=2)
        union = nd.broadcast_add(wh.prod(axis=2).expand_dims(2), gt_area.expand_dims(1)) - inter
        best = (inter / nd.maximum(union, 1e-9)).max(axis=2)
        keep = 1 - (best > IGNORE_IOU) * (obj_t == 0)

        def bce(logits: Any, target: Any) -> Any:
            return nd.relu(logits) - logits * target + nd.log1p(nd.exp(-nd.abs(logits)))

        pos = obj_t.expand_dims(2)
        l_obj = (bce(pred.slice_axis(axis=2, begin=4, end=5).squeeze(axis=2), obj_t) * keep).sum(
            axis=1
        )
        l_center = (bce(pred.slice_axis(axis=2, begin=0, end=2), center_t) * weight * pos).sum(
            axis=(1, 2)
        )
        l_size = (nd.abs(pred.slice_axis(axis=2, begin=2, end=4) - size_t) * weight * pos).sum(
            axis=(1, 2)
        )
        l_cls = (bce(pred.slice_axis(axis=2, begin=5, end=None), cls_t) * pos).sum(axis=(1, 2))
        return l_obj + l_center + l_size + l_cls
