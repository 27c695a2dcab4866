"""Python face of the C++ runtime: load an artifact, run images, get NumPy and Python out.

Pre- and post-processing run in C++ (the same code a device app links); this module
only decodes image files and shapes the results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file as stored (BGR/BGRA/gray, 8-bit); clear errors for bad files."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"image file not found: {p}")
    image = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidInputError(
            f"cannot decode {p}: not an image file, or a format OpenCV cannot read"
        )
    return image


def _top_k(top_k: int | None) -> int:
    """None → the manifest's default (-1 for the C++ API); negative values are an error."""
    if top_k is None:
        return -1
    if top_k < 0:
        raise InvalidInputError(f"top-k must be >= 0, got {top_k}")
    return top_k


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

    def run(
        self,
        image: np.ndarray | str | os.PathLike[str],
        top_k: int | None = None,
        order: str = "bgr",
    ) -> ClassificationResult:
        """Classify one image: a file path, or a uint8 HxWx3 array in ``order`` (bgr/rgb)."""
        if not isinstance(image, np.ndarray):
            image, order = read_image(image), "bgr"
        raw = self._impl.run(image, order, _top_k(top_k))
        return self._result(raw)

    def run_tensor(self, tensor: np.ndarray, top_k: int | None = None) -> ClassificationResult:
        """Run an already preprocessed float32 input of the artifact's input shape."""
        return self._result(self._impl.run_tensor(tensor, _top_k(top_k)))

    def preprocess(self, image: np.ndarray, order: str = "bgr") -> tuple[np.ndarray, np.ndarray]:
        """The C++ preprocessing: (resized+cropped uint8 image, normalised NCHW tensor)."""
        return self._impl.preprocess(image, order)

    @staticmethod
    def _result(raw: dict[str, Any]) -> ClassificationResult:
        return ClassificationResult(
            top=[Classification(i, s, label) for i, s, label in raw["top"]],
            probabilities=raw["probabilities"],
            outputs=list(raw["outputs"]),
        )
