"""Accuracy metrics, in NumPy (COCO box AP through pycocotools): top-1/top-5; Pascal VOC07
mAP (11-point, IoU 0.5, difficult objects ignored); COCO AP; segmentation pixel accuracy and
mIoU; COCO keypoint (OKS) AP. Each task's evaluation loop (:mod:`edgecv.tasks`) feeds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .datasets import coco_annotation
from .datasets.keypoints import COCO_KEYPOINT_SIGMAS
from .errors import InvalidInputError


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


class SegmentationMetric:
    """Semantic segmentation: a confusion matrix (rows: label, columns: prediction) over
    all updates, giving pixel accuracy and mean IoU. Pixels whose label is ``ignore_index``
    or outside [0, num_classes) are not counted. The mean IoU averages only classes present
    in the label or the prediction (union > 0); GluonCV's ``SegmentationMetric`` instead
    averages a zero for each absent class, so its mIoU is lower when classes are missing."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if num_classes < 1:
            raise InvalidInputError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def reset(self) -> None:
        self.confusion[:] = 0

    @staticmethod
    def _classes(a: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype.kind == "f" and not np.array_equal(a, np.round(a)):
            raise InvalidInputError(f"{what} holds non-integer class ids")
        if a.dtype.kind not in "biuf":
            raise InvalidInputError(f"{what} must hold integer class ids, got dtype {a.dtype}")
        return a.astype(np.int64).reshape(-1)

    def update(self, label: np.ndarray, pred: np.ndarray) -> None:
        """One image (or a batch): label and predicted class ids of the same shape (H, W)."""
        label_shape, pred_shape = np.shape(label), np.shape(pred)
        if label_shape != pred_shape:
            raise InvalidInputError(
                f"label shape {label_shape} and prediction shape {pred_shape} differ"
            )
        lab, prd = self._classes(label, "label"), self._classes(pred, "prediction")
        n = self.num_classes
        bad = (prd < 0) | (prd >= n)
        if bad.any():
            raise InvalidInputError(
                f"prediction holds class ids outside [0, {n}): {sorted(set(prd[bad].tolist()))[:5]}"
            )
        keep = (lab != self.ignore_index) & (lab >= 0) & (lab < n)
        counts = np.bincount(lab[keep] * n + prd[keep], minlength=n * n)
        self.confusion += counts.reshape(n, n)

    def get(self) -> dict[str, Any]:
        """``pixel_accuracy``, ``mean_iou`` and the per-class ``iou`` (None for a class
        absent from both label and prediction, left out of the mean)."""
        total = int(self.confusion.sum())
        if total == 0:
            raise InvalidInputError("no labelled pixels to score (all ignored or no updates)")
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(axis=0) + self.confusion.sum(axis=1) - tp
        iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union, strict=True)]
        present = [v for v in iou if v is not None]
        return {
            "pixel_accuracy": float(tp.sum() / total),
            "mean_iou": float(np.mean(present)),
            "iou": iou,
        }


def _oks_matrix(
    gt_xy: np.ndarray,
    gt_vis: np.ndarray,
    areas: np.ndarray,
    pred_xy: np.ndarray,
    sigmas: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """OKS of predictions (D, K, 2) × ground truths (G, K, 2) → (D, G); a ground truth
    without labelled keypoints scores 0."""
    variances = (np.asarray(sigmas, np.float64) * 2) ** 2
    d2 = ((pred_xy[:, None] - gt_xy[None]) ** 2).sum(axis=-1)  # (D, G, K)
    e = d2 / variances / (areas[None, :, None] + np.spacing(1)) / 2
    labelled = gt_vis > 0  # (G, K)
    n = labelled.sum(axis=1)
    s = np.where(labelled[None], np.exp(-e), 0.0).sum(axis=-1)
    return np.where(n > 0, s / np.maximum(n, 1), 0.0)


def _keypoints(a: Any, k: int, what: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[0] != k or a.shape[1] < 2:
        raise InvalidInputError(
            f"{what} must be ({k}, 2) or ({k}, 3) for {k} sigmas, got {a.shape}"
        )
    return a


def oks(
    gt_xy: np.ndarray,
    gt_vis: np.ndarray,
    area: float,
    pred_xy: np.ndarray,
    sigmas: Sequence[float] | np.ndarray = COCO_KEYPOINT_SIGMAS,
) -> float:
    """COCO object keypoint similarity: mean over labelled keypoints (visibility > 0) of
    exp(-d² / (2σ)² / (area + eps) / 2). A ground truth with no labelled keypoint gives 0
    (COCOeval ignores such ground truth instead)."""
    k = len(sigmas)
    gxy = _keypoints(gt_xy, k, "ground-truth keypoints")[:, :2]
    pxy = _keypoints(pred_xy, k, "predicted keypoints")[:, :2]
    vis = np.asarray(gt_vis, np.float64).reshape(-1)
    if len(vis) != k:
        raise InvalidInputError(f"visibility must have {k} entries, got {len(vis)}")
    return float(
        _oks_matrix(gxy[None], vis[None], np.array([float(area)]), pxy[None], sigmas)[0, 0]
    )


def keypoint_ap(
    gts: Sequence[Sequence[dict[str, Any]]],
    preds: Sequence[Sequence[dict[str, Any]]],
    sigmas: Sequence[float] | np.ndarray = COCO_KEYPOINT_SIGMAS,
) -> dict[str, float]:
    """COCO keypoint AP (OKS .50:.95), AP50, AP75, computed here in NumPy.

    ``gts``: per image, a list of {"keypoints": (K, 3) x y v, "area"}; ``preds``: per
    image, a list of {"keypoints": (K, 2|3), "score"}. Ground truth without labelled
    keypoints is dropped. At each threshold, detections taken by score over all images
    (stable) match the unmatched ground truth of their image with the highest OKS ≥ the
    threshold (ties: the later one, as COCOeval); AP is 101-point interpolated. Unlike
    COCOeval there is no per-image cap on detections (COCO: 20), no area ranges, and a
    detection on dropped ground truth is a false positive rather than ignored."""
    if len(gts) != len(preds):
        raise InvalidInputError(
            f"{len(gts)} images of ground truth but {len(preds)} of predictions"
        )
    k = len(sigmas)
    thresholds = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
    rec_thrs = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1)
    npos = 0
    scores: list[np.ndarray] = []
    hits: list[np.ndarray] = []  # per image: (T, D) matched flags, detections by score
    for i, (img_gts, img_preds) in enumerate(zip(gts, preds, strict=True)):
        g_kp = [
            _keypoints(g["keypoints"], k, f"image {i}: ground-truth keypoints") for g in img_gts
        ]
        if any(g.shape[1] < 3 for g in g_kp):
            raise InvalidInputError(f"image {i}: ground-truth keypoints need x, y, visibility")
        labelled = [j for j, g in enumerate(g_kp) if (g[:, 2] > 0).any()]
        g_xy = np.array([g_kp[j][:, :2] for j in labelled]).reshape(-1, k, 2)
        g_vis = np.array([g_kp[j][:, 2] for j in labelled]).reshape(-1, k)
        areas = np.array([float(img_gts[j]["area"]) for j in labelled], np.float64)
        npos += len(labelled)
        s = np.array([float(p["score"]) for p in img_preds], np.float64)
        order = np.argsort(-s, kind="stable")
        p_xy = np.array(
            [
                _keypoints(img_preds[j]["keypoints"], k, f"image {i}: predicted keypoints")[:, :2]
                for j in order
            ]
        ).reshape(-1, k, 2)
        o = _oks_matrix(g_xy, g_vis, areas, p_xy, sigmas)  # (D, G)
        hit = np.zeros((len(thresholds), len(order)), bool)
        for t, thr in enumerate(thresholds):
            free = np.ones(len(labelled), bool)
            for d in range(len(order)):
                cand = np.where(free & (o[d] >= thr), o[d], -1.0)
                if not free.any():
                    break
                best = len(cand) - 1 - int(np.argmax(cand[::-1]))  # last of equal maxima
                if cand[best] >= 0:
                    free[best], hit[t, d] = False, True
        scores.append(s[order])
        hits.append(hit)
    if npos == 0:
        raise InvalidInputError("no ground truth with labelled keypoints to score")
    order = np.argsort(-np.concatenate(scores), kind="stable")
    matched = np.concatenate(hits, axis=1)[:, order]
    tp = np.cumsum(matched, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched, axis=1, dtype=np.float64)
    n = len(order)
    aps = np.zeros(len(thresholds))
    for t in range(len(thresholds) if n else 0):
        recall = tp[t] / npos
        precision = tp[t] / (tp[t] + fp[t] + np.spacing(1))
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        idx = np.searchsorted(recall, rec_thrs, side="left")
        q = np.where(idx < n, precision[np.minimum(idx, n - 1)], 0.0)
        aps[t] = q.mean()
    return {
        "oks_ap": float(aps.mean()),
        "oks_ap50": float(aps[0]),
        "oks_ap75": float(aps[5]),
    }
