"""edgecv: edge deployment compiler and runtime kit for computer vision.

``import edgecv`` stays light: MXNet and TVM are imported only by the functions
that need them (model building/export and compilation).
"""

from __future__ import annotations

import os
from typing import Any

# oneDNN's OpenMP threads sleep between parallel regions instead of spinning (libgomp's
# default spins 300000 times first): on a CPU shared with other processes, as on most
# devices, spinning threads take the cores the next region waits for (measured beside one
# busy process on 2 cores: ResNet-50 1.65x faster at the median, 2.5x at p90, with PASSIVE),
# against 1 % (ResNet-50) to 15 % (ResNet-18) when the CPU is idle (BENCHMARKS.md "OpenMP
# waiting"). Set before any OpenMP runtime loads; a user's own OMP_WAIT_POLICY or
# GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

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
