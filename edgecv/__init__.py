"""edgecv: edge deployment compiler and runtime kit for computer vision.

``import edgecv`` stays light: MXNet and TVM are imported only by the functions
that need them (model building/export and compilation).
"""

from __future__ import annotations

from typing import Any

from .errors import ArtifactError, EdgecvError, InvalidInputError, ParityError, UnknownNameError

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "EdgecvError",
    "InvalidInputError",
    "ParityError",
    "UnknownNameError",
    "get_model",
    "list_models",
    "__version__",
]


def list_models(task: str | None = None) -> list[str]:
    """Names of the registered zoo models (optionally of one task)."""
    from .zoo.catalog import MODELS

    return [spec.name for spec in MODELS if task is None or spec.task == task]


def get_model(name: str, pretrained: Any = None, classes: Any = None, **kwargs: Any) -> Any:
    """Build a zoo model (MXNet Gluon HybridBlock); see :func:`edgecv.zoo.get_model`."""
    from .zoo import get_model as _get_model

    return _get_model(name, pretrained=pretrained, classes=classes, **kwargs)
