"""What a compiled model returns for one image, per task: the types the runtime's
:class:`~edgecv.runtime.Predictor` gives back, each built from the C++ runtime's raw
dictionary by its ``from_raw``. Which type a task returns is in :mod:`edgecv.tasks`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Classification:
    index: int
    score: float
    label: str


@dataclass
class ClassificationResult:
    top: list[Classification]
    probabilities: np.ndarray
    outputs: list[np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage of this call

    @classmethod
    def from_raw(cls, raw: dict[str, Any], classes: list[str]) -> ClassificationResult:
        return cls(
            top=[Classification(i, s, label) for i, s, label in raw["top"]],
            probabilities=raw["probabilities"],
            outputs=list(raw["outputs"]),
            timings=dict(raw["timings"]),
        )


@dataclass
class DetectionResult:
    """Detections best first: class ids (N,), scores (N,), corner boxes (N, 4) in pixels."""

    ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    labels: list[str]
    outputs: list[np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage of this call

    @classmethod
    def from_raw(cls, raw: dict[str, Any], classes: list[str]) -> DetectionResult:
        ids, scores, boxes = raw["detections"]
        return cls(
            ids,
            scores,
            boxes,
            [classes[i] if 0 <= i < len(classes) else str(i) for i in ids],
            list(raw["outputs"]),
            dict(raw["timings"]),
        )

    def above(self, threshold: float) -> DetectionResult:
        keep = self.scores > threshold
        return DetectionResult(
            self.ids[keep],
            self.scores[keep],
            self.boxes[keep],
            [label for label, k in zip(self.labels, keep, strict=True) if k],
            self.outputs,
            self.timings,
        )


@dataclass
class SegmentationResult:
    """Per-pixel classes (H, W) int32 at the image's size (255: not covered by the input)."""

    labels: np.ndarray
    class_names: list[str]
    outputs: list[np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: dict[str, Any], classes: list[str]) -> SegmentationResult:
        return cls(raw["labels"], classes, list(raw["outputs"]), dict(raw["timings"]))

    def colorize(self) -> np.ndarray:
        """RGB (H, W, 3) uint8 image of the label map, Pascal VOC palette (C++ runtime)."""
        from . import _runtime  # a result exists only where the runtime module does

        return _runtime.colorize(self.labels)


@dataclass
class PoseResult:
    """One pose per person box: keypoints (N, K, 2) in image pixels, their heatmap peak
    scores (N, K), and the image region each person's crop covered (N, 4: x0, y0, w, h)."""

    keypoints: np.ndarray
    scores: np.ndarray
    crops: np.ndarray
    joint_names: list[str]
    outputs: list[np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: dict[str, Any], classes: list[str]) -> PoseResult:
        keypoints, scores, crops = raw["poses"]
        if not len(keypoints):  # no person: (0, K, 2)
            k = len(classes)
            keypoints, scores = np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        return cls(keypoints, scores, crops, classes, list(raw["outputs"]), dict(raw["timings"]))


Result = ClassificationResult | DetectionResult | SegmentationResult | PoseResult
