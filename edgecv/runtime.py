"""Python face of the C++ runtime: load an artifact, run images, get NumPy and Python out.

Pre- and post-processing run in C++ (the same code a device app links); this module
only decodes image files and shapes the results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgecvError, InvalidInputError


def _native() -> Any:
    try:
        from . import _runtime
    except ImportError as err:
        raise EdgecvError(
            f"the edgecv C++ runtime module is not available ({err}); install edgecv with "
            "`pip install .` so that it is built"
        ) from None
    return _runtime


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


@dataclass
class DetectionResult:
    """Detections best first: class ids (N,), scores (N,), corner boxes (N, 4) in pixels."""

    ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    labels: list[str]
    outputs: list[np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage of this call

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

    def colorize(self) -> np.ndarray:
        """RGB (H, W, 3) uint8 image of the label map, Pascal VOC palette (C++ runtime)."""
        return _native().colorize(self.labels)


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


Result = ClassificationResult | DetectionResult | SegmentationResult | PoseResult


# leading bytes of the formats users have, to tell a damaged image from a file that is no image
_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WebP",
    b"GIF8": "GIF",
}


def read_image(path: str | os.PathLike[str], color: bool = True) -> np.ndarray:
    """Decode an image file as 8-bit BGR (H, W, 3), as OpenCV's ``imread(IMREAD_COLOR)`` does,
    whatever the file holds: gray is replicated to three channels, an alpha channel is dropped
    (not composited), 16-bit samples keep their high byte (``v >> 8``), CMYK JPEGs are converted
    to BGR and the EXIF orientation is applied. With ``color=False``: the pixels as stored
    (gray, BGR or BGRA, 8- or 16-bit; EXIF orientation not applied).

    A missing, empty, truncated or corrupt file raises InvalidInputError naming it.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"image file not found: {p}")
    data = np.fromfile(str(p), np.uint8)
    if data.size == 0:
        raise InvalidInputError(f"cannot decode {p}: the file is empty")
    # imdecode, unlike imread, refuses a truncated JPEG instead of returning it half gray
    image = cv2.imdecode(data, cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED)
    if image is None:
        head = data[:12].tobytes()
        kind = next((k for sig, k in _SIGNATURES.items() if head.startswith(sig)), None)
        if kind == "WebP" and head[8:12] != b"WEBP":
            kind = None
        raise InvalidInputError(
            f"cannot decode {p}: a truncated or corrupt {kind} file"
            if kind
            else f"cannot decode {p}: not an image file, or a format OpenCV cannot read"
        )
    return image


def _top_k(top_k: int | None) -> int:
    """None → the manifest's default (-1 for the C++ API); negative values are an error."""
    if top_k is None:
        return -1
    if top_k < 0:
        raise InvalidInputError(f"top-k must be >= 0, got {top_k}")
    return top_k


def _detection_options(
    score_threshold: float | None = None,
    iou_threshold: float | None = None,
    max_detections: int | None = None,
    class_agnostic: bool | None = None,
) -> dict[str, Any]:
    """Keyword overrides for the C++ runtime (-1: the manifest's value), validated."""
    for name, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise InvalidInputError(f"{name} must be within [0, 1], got {value}")
    if max_detections is not None and max_detections < 0:
        raise InvalidInputError(f"max_detections must be >= 0, got {max_detections}")
    return {
        "score_threshold": -1.0 if score_threshold is None else float(score_threshold),
        "iou_threshold": -1.0 if iou_threshold is None else float(iou_threshold),
        "max_detections": -1 if max_detections is None else int(max_detections),
        "class_agnostic": -1 if class_agnostic is None else int(bool(class_agnostic)),
    }


class Predictor:
    """A compiled artifact ready to run (verified on open)."""

    def __init__(self, artifact_dir: str | os.PathLike[str]) -> None:
        self.artifact_dir = Path(artifact_dir)
        self._impl = _native().Predictor(str(self.artifact_dir))

    @property
    def model(self) -> str:
        return self._impl.model

    @property
    def classes(self) -> list[str]:
        return self._impl.classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self._impl.input_shape)

    @property
    def task(self) -> str:
        return self._impl.task

    def run(
        self,
        image: np.ndarray | str | os.PathLike[str],
        top_k: int | None = None,
        order: str = "bgr",
        **detection: Any,
    ) -> Result:
        """Run one image: a file path (decoded by `read_image`: 8-bit color whatever the file
        holds), or a uint8 array (H, W) or (H, W, 1) gray, (H, W, 3) color in ``order``
        (bgr/rgb), or (H, W, 4) color + alpha in ``order`` (bgra/rgba; the alpha channel is
        dropped, not composited, as for files). Gray is replicated to three channels. Other
        dtypes and shapes raise InvalidInputError.

        Classification: ``top_k``. Detection overrides of the manifest's values:
        ``score_threshold``, ``iou_threshold``, ``max_detections``, ``class_agnostic``;
        boxes come back in the image's pixels, clipped to it.
        """
        if not isinstance(image, np.ndarray):
            image, order = read_image(image), "bgr"
        raw = self._impl.run(image, order, _top_k(top_k), **_detection_options(**detection))
        return self._result(raw)

    def run_pose(
        self,
        image: np.ndarray | str | os.PathLike[str],
        boxes: np.ndarray | list[list[float]],
        order: str = "bgr",
    ) -> PoseResult:
        """Pose models: one pose per person box ((N, 4) corners in image pixels, e.g. from an
        edgecv detector). No boxes give an empty result; a box without area or outside the
        image is an error naming the box."""
        if self.task != "pose":
            raise InvalidInputError(f"run_pose needs a pose model; {self.model} is {self.task}")
        if not isinstance(image, np.ndarray):
            image, order = read_image(image), "bgr"
        return self._result(self._impl.run_pose(image, np.asarray(boxes, np.float32), order))

    def run_tensor(self, tensor: np.ndarray, top_k: int | None = None, **detection: Any) -> Result:
        """Run an already preprocessed float32 input; detection boxes stay in input pixels."""
        raw = self._impl.run_tensor(tensor, _top_k(top_k), **_detection_options(**detection))
        return self._result(raw)

    def preprocess(
        self, image: np.ndarray, order: str = "bgr"
    ) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[float, float]]]:
        """The C++ preprocessing: (transformed uint8 image, normalised NCHW tensor, geometry),
        where geometry maps image to network pixels: net = image * scale + offset."""
        return self._impl.preprocess(image, order)

    def _result(self, raw: dict[str, Any]) -> Result:
        if self.task == "segmentation":
            return SegmentationResult(
                raw["labels"], self.classes, list(raw["outputs"]), dict(raw["timings"])
            )
        if self.task == "pose":
            keypoints, scores, crops = raw["poses"]
            if not len(keypoints):  # no person: (0, K, 2)
                k = len(self.classes)
                keypoints, scores = np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
            return PoseResult(
                keypoints, scores, crops, self.classes, list(raw["outputs"]), dict(raw["timings"])
            )
        if self.task == "detection":
            ids, scores, boxes = raw["detections"]
            classes = self.classes
            return DetectionResult(
                ids,
                scores,
                boxes,
                [classes[i] if 0 <= i < len(classes) else str(i) for i in ids],
                list(raw["outputs"]),
                dict(raw["timings"]),
            )
        return ClassificationResult(
            top=[Classification(i, s, label) for i, s, label in raw["top"]],
            probabilities=raw["probabilities"],
            outputs=list(raw["outputs"]),
            timings=dict(raw["timings"]),
        )
