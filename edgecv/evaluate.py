"""Evaluation: the same code for a float (MXNet) model and a compiled artifact.

Both kinds of model see images through the C++ preprocessing of the artifact's manifest
(for a float model: the manifest it would get), so an accuracy difference between them
is the compiler's doing, not a preprocessing drift. The metrics live in
:mod:`edgecv.metrics` (re-exported here), each task's evaluation loop in its
:mod:`edgecv.tasks` entry; this module holds the two model adapters (:class:`FloatModel`,
:class:`ArtifactModel`), :func:`load_model` that picks one, and :func:`evaluate`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .datasets.keypoints import COCO_KEYPOINT_SIGMAS
from .errors import InvalidInputError
from .metrics import (
    VOC07MAP,
    SegmentationMetric,
    box_iou,
    coco_ap,
    keypoint_ap,
    oks,
    topk_accuracy,
)
from .tasks import TASKS

__all__ = [
    "COCO_KEYPOINT_SIGMAS",
    "VOC07MAP",
    "ArtifactModel",
    "FloatModel",
    "Model",
    "SegmentationMetric",
    "box_iou",
    "coco_ap",
    "evaluate",
    "keypoint_ap",
    "load_model",
    "oks",
    "topk_accuracy",
]

# ---------------------------------------------------------------------------- models


class FloatModel:
    """An MXNet zoo model behind the C++ preprocessing its artifact would use."""

    def __init__(self, net: Any, input_size: int | None = None):
        from .ops import preprocess_ops
        from .runtime import _native

        meta = net.edgecv_meta
        self.net = net
        self.task = meta.spec.task
        self.classes = list(meta.classes)
        data = meta.data if input_size is None else meta.data.scaled(input_size)
        self.input_shape = (1, 3, *data.input_size)
        self.data = data
        ops = preprocess_ops(data)
        self._pre = _native().Preprocessor(json.dumps(ops), list(self.input_shape))
        self._crop_scale = next((op["scale"] for op in ops if op["op"] == "person_crop"), None)
        if self.task == "detection":
            net.raw_outputs = False
            net.hybridize()  # drops a graph cached with the raw outputs
        elif self.task == "segmentation":
            net.training_outputs = False
            net.set_input_size(data.input_size)
            net.hybridize()

    def _forward(self, image: np.ndarray) -> tuple[Any, dict]:
        import mxnet as mx

        _, tensor, geometry = self._pre.run(image, "bgr")
        ctx = next(iter(self.net.collect_params().values())).list_ctx()[0]  # a trained net's device
        return self.net(mx.nd.array(tensor, ctx=ctx)), geometry

    def classify(self, image: np.ndarray) -> np.ndarray:
        from .runtime import _native

        logits, _ = self._forward(image)
        return np.asarray(_native().softmax(logits.asnumpy().ravel().tolist()), np.float32)

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Class ids (H, W) at the image's size: the artifact's C++ label-map code."""
        from .runtime import _native

        scores, geometry = self._forward(image)
        h, w = image.shape[:2]
        return np.asarray(
            _native().segment_labels(
                scores.asnumpy(), w, h, tuple(geometry["scale"]), tuple(geometry["offset"])
            )
        )

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

    def pose(self, image: np.ndarray, boxes: Any) -> tuple[np.ndarray, np.ndarray]:
        """One pose per person box ((P, 4) corners, image pixels): keypoints (P, K, 2) in
        image pixels and their heatmap peaks (P, K). The artifact's C++ person crop,
        preprocessing and heatmap decode around the MXNet network."""
        import mxnet as mx

        from .runtime import _native

        native, k = _native(), len(self.classes)
        b = np.asarray(boxes, np.float32)
        b = b.reshape(0, 4) if b.size == 0 else b
        if b.ndim != 2 or b.shape[1] != 4:
            raise InvalidInputError(f"person boxes must be (N, 4) corners, got shape {b.shape}")
        if not len(b):
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        h_in, w_in = self.data.input_size
        h, w = image.shape[:2]
        crops, tensors = [], []
        for i, box in enumerate(b):
            try:
                crop = native.person_crop(box.tolist(), w_in, h_in, self._crop_scale, w, h)
            except InvalidInputError as err:
                raise InvalidInputError(f"box {i}: {err}") from None
            tensors.append(self._pre.run_crop(image, list(crop), "bgr")[0])
            crops.append(crop)
        ctx = next(iter(self.net.collect_params().values())).list_ctx()[0]
        heatmaps = self.net(mx.nd.array(np.stack(tensors), ctx=ctx)).asnumpy()
        decoded = [
            native.decode_heatmaps(heatmaps[i : i + 1], list(c)) for i, c in enumerate(crops)
        ]
        return (
            np.array([d[0] for d in decoded], np.float32).reshape(-1, k, 2),
            np.array([d[1] for d in decoded], np.float32).reshape(-1, k),
        )


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

    def segment(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.predictor.run(image).labels)

    def pose(self, image: np.ndarray, boxes: Any) -> tuple[np.ndarray, np.ndarray]:
        r = self.predictor.run_pose(image, boxes)
        return np.asarray(r.keypoints, np.float32), np.asarray(r.scores, np.float32)


Model = FloatModel | ArtifactModel


def evaluate(
    model: Model,
    dataset: Any,
    metrics: Sequence[str] = (),
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on ``dataset`` with its task's evaluation (:mod:`edgecv.tasks`).
    Classification: top1/top5. Detection: voc07_map (and, with ``"coco"`` in ``metrics``,
    coco_ap/coco_ap50/coco_ap75). Segmentation: pixel_accuracy and mean_iou. Pose: keypoint
    AP (OKS) with the annotated boxes."""
    task = TASKS.get(model.task)
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
    report.update(task.evaluate(model, dataset, n, progress, metrics))
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
