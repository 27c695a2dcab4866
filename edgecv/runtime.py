"""Python face of the C++ runtime: load an artifact, run images, get NumPy and Python out.

Pre- and post-processing run in C++ (the same code a device app links); this module
only decodes image files and shapes the results, as the task's entry in the task table
(:mod:`edgecv.tasks`) says: its result type (:mod:`edgecv.results`, re-exported here).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, EdgecvError, InvalidInputError
from .images import read_image
from .results import (  # noqa: F401  (the result types are part of this module's API)
    Classification,
    ClassificationResult,
    DetectionResult,
    PoseResult,
    Result,
    SegmentationResult,
)
from .tasks import TASKS


def _native() -> Any:
    try:
        from . import _runtime
    except ImportError as err:
        raise EdgecvError(
            f"the edgecv C++ runtime module is not available ({err}); install edgecv with "
            "`pip install .` so that it is built"
        ) from None
    return _runtime


def _manifest_target(artifact_dir: Path) -> str:
    """'name' (host triple) of the artifact's target, for messages only."""
    try:
        target = json.loads((artifact_dir / "manifest.json").read_text())["target"]
        return f"'{target['name']}' ({target['host_triple']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


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
        native = _native()
        try:
            self._impl = native.Predictor(str(self.artifact_dir))
        except ArtifactError as err:
            if "kernels (compiled with --kernels" not in str(err):
                raise
            # the C++ check knows the library, not where this runtime came from: name the
            # artifact's target, this machine and the kernel libraries this build has
            raise ArtifactError(
                f"{err} [artifact target {_manifest_target(self.artifact_dir)}; this runtime on "
                f"{platform.machine()} has kernels: {', '.join(native.kernel_libraries()) or 'none'}]"
            ) from None

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
        return TASKS.get(self.task).result.from_raw(raw, self.classes)
