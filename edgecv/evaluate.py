"""Evaluation: the same code for a float (MXNet) model and a compiled artifact.

Both kinds of model see images through the C++ preprocessing of the artifact's manifest
(for a float model: the manifest it would get), so an accuracy difference between them
is the compiler's doing, not a preprocessing drift. Metrics: top-1/top-5; Pascal VOC07
mAP (11-point, IoU 0.5, difficult objects ignored); COCO AP through pycocotools.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import coco_annotation
from .errors import InvalidInputError

# ---------------------------------------------------------------------------- metrics


def topk_accuracy(
    scores: np.ndarray, labels: Sequence[int], ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Fraction of rows whose label is among the k highest scores, for each k (ties: the
    label counts as found only if fewer than k scores are strictly higher)."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.int64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise InvalidInputError(f"scores {scores.shape} and labels ({len(labels)},) do not match")
    if len(labels) == 0:
        raise InvalidInputError("no samples to score")
    own = scores[np.arange(len(labels)), labels]
    rank = (scores > own[:, None]).sum(axis=1)
    return {f"top{k}": float((rank < k).mean()) for k in ks if k <= scores.shape[1]}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of corner boxes a (N, 4) × b (M, 4), continuous coordinates."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _rows(gt: np.ndarray) -> np.ndarray:
    """Ground truth as (N, ≥5) float rows; an image without objects gives (0, 6)."""
    gt = np.asarray(gt, np.float64)
    return gt.reshape(-1, gt.shape[-1]) if gt.size else np.zeros((0, 6))


class VOC07MAP:
    """Pascal VOC 2007 detection metric: per class, detections sorted by score are matched
    greedily to unmatched ground truth with IoU ≥ ``iou``; difficult ground truth neither
    counts nor penalises; AP is the 11-point interpolated precision (recall 0, 0.1 … 1)."""

    def __init__(self, num_classes: int, iou: float = 0.5):
        self.num_classes, self.iou = num_classes, iou
        self._scores: list[list[float]] = [[] for _ in range(num_classes)]
        self._hits: list[list[int]] = [[] for _ in range(num_classes)]
        self._npos = np.zeros(num_classes, np.int64)

    def update(
        self, ids: np.ndarray, scores: np.ndarray, boxes: np.ndarray, gt: np.ndarray
    ) -> None:
        """One image: detections (ids, scores, boxes) and ground truth rows (x0 y0 x1 y1 class [difficult])."""
        ids = np.asarray(ids).reshape(-1).astype(np.int64)
        scores = np.asarray(scores, np.float64).reshape(-1)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        gt = _rows(gt)
        gt_cls = gt[:, 4].astype(np.int64) if len(gt) else np.zeros(0, np.int64)
        difficult = gt[:, 5] > 0 if gt.shape[1] > 5 else np.zeros(len(gt), bool)
        for c in range(self.num_classes):
            g = gt[(gt_cls == c)]
            g_diff = difficult[gt_cls == c]
            self._npos[c] += int((~g_diff).sum())
            mine = np.nonzero(ids == c)[0]
            mine = mine[np.argsort(-scores[mine], kind="stable")]
            if len(mine) == 0:
                continue
            ious = box_iou(boxes[mine], g[:, :4]) if len(g) else np.zeros((len(mine), 0))
            taken = np.zeros(len(g), bool)
            for row, det in enumerate(mine):
                best = int(np.argmax(ious[row])) if len(g) else -1
                if best >= 0 and ious[row, best] >= self.iou:
                    if g_diff[best]:
                        continue  # matched a difficult object: ignored
                    if not taken[best]:
                        taken[best] = True
                        self._scores[c].append(float(scores[det]))
                        self._hits[c].append(1)
                        continue
                self._scores[c].append(float(scores[det]))
                self._hits[c].append(0)

    def per_class(self) -> list[float | None]:
        """AP of each class; None for a class with no (non-difficult) ground truth."""
        out: list[float | None] = []
        for c in range(self.num_classes):
            if self._npos[c] == 0:
                out.append(None)
                continue
            order = np.argsort(-np.asarray(self._scores[c]), kind="stable")
            hits = np.asarray(self._hits[c], np.float64)[order]
            tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
            recall = tp / self._npos[c]
            precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            ap = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                p = precision[recall >= t - 1e-12]
                ap += (p.max() if len(p) else 0.0) / 11.0
            out.append(float(ap))
        return out

    def get(self) -> float:
        aps = [a for a in self.per_class() if a is not None]
        return float(np.mean(aps)) if aps else 0.0


def coco_ap(
    gts: Sequence[np.ndarray],
    dets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
    image_sizes: Sequence[tuple[int, int]],
) -> dict[str, float]:
    """COCO AP (IoU .50:.95), AP50, AP75 through pycocotools, from corner-box arrays."""
    import contextlib
    import io

    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise InvalidInputError("COCO AP needs pycocotools (pip install pycocotools)") from None
    images, annotations, results = [], [], []
    for i, (gt, (ids, scores, boxes), (h, w)) in enumerate(
        zip(gts, dets, image_sizes, strict=True)
    ):
        images.append({"id": i + 1, "width": int(w), "height": int(h)})
        for r in _rows(gt):
            annotations.append(coco_annotation(len(annotations) + 1, i + 1, [float(v) for v in r]))
        for c, s, b in zip(
            np.ravel(ids), np.ravel(scores), np.reshape(boxes, (-1, 4)), strict=True
        ):
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "score": float(s),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                }
            )
    gt_coco = COCO()
    gt_coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco.createIndex()
        if not results:
            return {"coco_ap": 0.0, "coco_ap50": 0.0, "coco_ap75": 0.0}
        ev = COCOeval(gt_coco, gt_coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {
        "coco_ap": float(ev.stats[0]),
        "coco_ap50": float(ev.stats[1]),
        "coco_ap75": float(ev.stats[2]),
    }


# ---------------------------------------------------------------------------- models


class FloatModel:
    """An MXNet zoo model behind the C++ preprocessing its artifact would use."""

    def __init__(self, net: Any, input_size: int | None = None):
        from .compile import preprocess_ops
        from .runtime import _native

        meta = net.edgecv_meta
        self.net = net
        self.task = meta.spec.task
        self.classes = list(meta.classes)
        data = meta.data if input_size is None else meta.data.scaled(input_size)
        self.input_shape = (1, 3, *data.input_size)
        self._pre = _native().Preprocessor(json.dumps(preprocess_ops(data)), list(self.input_shape))
        if self.task == "detection":
            net.raw_outputs = False
            net.hybridize()  # drops a graph cached with the raw outputs

    def _forward(self, image: np.ndarray) -> tuple[Any, dict]:
        import mxnet as mx

        _, tensor, geometry = self._pre.run(image, "bgr")
        ctx = next(iter(self.net.collect_params().values())).list_ctx()[0]  # a trained net's device
        return self.net(mx.nd.array(tensor, ctx=ctx)), geometry

    def classify(self, image: np.ndarray) -> np.ndarray:
        from .runtime import _native

        logits, _ = self._forward(image)
        return np.asarray(_native().softmax(logits.asnumpy().ravel().tolist()), np.float32)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        (ids, scores, boxes), geometry = self._forward(image)
        ids = ids.asnumpy().reshape(-1)
        keep = ids >= 0
        scale = np.array(geometry["scale"] * 2, np.float32)
        offset = np.array(geometry["offset"] * 2, np.float32)
        h, w = image.shape[:2]
        b = (boxes.asnumpy().reshape(-1, 4)[keep] - offset) / scale
        b = np.clip(b, 0, np.array([w, h, w, h], np.float32))
        return ids[keep].astype(np.int32), scores.asnumpy().reshape(-1)[keep], b


class ArtifactModel:
    """A compiled artifact through the C++ runtime."""

    def __init__(self, artifact_dir: str | os.PathLike[str]):
        from .runtime import Predictor

        self.predictor = Predictor(artifact_dir)
        self.task = self.predictor.task
        self.classes = self.predictor.classes

    def classify(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.predictor.run(image, top_k=0).probabilities, np.float32)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.predictor.run(image)
        return r.ids, r.scores, r.boxes


Model = FloatModel | ArtifactModel


def evaluate(
    model: Model,
    dataset: Any,
    metrics: Sequence[str] = (),
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on ``dataset``. Classification: top1/top5. Detection: voc07_map
    (and, with ``"coco"`` in ``metrics``, coco_ap/coco_ap50/coco_ap75)."""
    if model.task != dataset.task:
        raise InvalidInputError(
            f"a {model.task} model cannot be evaluated on a {dataset.task} dataset"
        )
    if len(model.classes) != len(dataset.classes):
        raise InvalidInputError(
            f"the model has {len(model.classes)} classes, the dataset {len(dataset.classes)}"
        )
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise InvalidInputError("the dataset is empty")
    t0 = time.perf_counter()
    report: dict[str, Any] = {"images": n, "task": model.task}
    if model.task == "classification":
        probs, labels = [], []
        for i in range(n):
            image, label = dataset[i]
            probs.append(model.classify(image))
            labels.append(label)
            if progress:
                progress(i + 1, n)
        report.update(topk_accuracy(np.stack(probs), labels))
    else:
        voc = VOC07MAP(len(dataset.classes))
        gts, dets, sizes = [], [], []
        for i in range(n):
            image, gt = dataset[i]
            d = model.detect(image)
            voc.update(*d, gt)
            gts.append(gt)
            dets.append(d)
            sizes.append(image.shape[:2])
            if progress:
                progress(i + 1, n)
        report["voc07_map"] = voc.get()
        report["voc07_ap_per_class"] = dict(zip(dataset.classes, voc.per_class(), strict=True))
        if "coco" in metrics:
            report.update(coco_ap(gts, dets, len(dataset.classes), sizes))
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def load_model(
    spec: str | os.PathLike[str], pretrained: str | None = None, input_size: int | None = None
) -> Model:
    """An artifact directory (has manifest.json) or a zoo model name."""
    p = Path(spec)
    if (p / "manifest.json").is_file():
        return ArtifactModel(p)
    from . import zoo

    return FloatModel(zoo.get_model(str(spec), pretrained=pretrained), input_size)
