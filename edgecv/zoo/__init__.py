"""Model zoo (MXNet Gluon). Building a model imports MXNet; listing does not."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..registry import DataConfig, ModelSpec, resolve
from .catalog import MODELS

_DATA_DIR = Path(__file__).parent / "data"
WEIGHTS_DIR = Path(__file__).parent.parent / "weights"


@dataclass(frozen=True)
class ModelMeta:
    """What travels with a built network: its spec, preprocessing and class names."""

    spec: ModelSpec
    data: DataConfig
    classes: tuple[str, ...]


@cache
def label_set(name: str) -> tuple[str, ...]:
    """Class names of a label set shipped under ``edgecv/zoo/data/<name>.txt``."""
    path = _DATA_DIR / f"{name}.txt"
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def get_model(
    name: str,
    pretrained: str | os.PathLike[str] | bool | None = None,
    classes: int | Sequence[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Build zoo model ``name`` as an MXNet Gluon HybridBlock.

    ``pretrained`` is a local ``.params`` file (GluonCV's or edgecv's); nothing is
    downloaded. ``None``: the weights edgecv trained and ships for this model, if it has
    any (:func:`shipped_weights`), else fresh initialisation; ``False``: always fresh.
    ``classes`` is a class count or a list of class names replacing the model's label
    set (shipped weights are then not loaded).
    The returned block has an ``edgecv_meta`` attribute (:class:`ModelMeta`).
    """
    spec = MODELS.get(name)  # a misspelt name is reported before MXNet loads
    import mxnet as mx

    names = label_set(spec.classes)
    if classes is None and pretrained not in (None, True, False):
        classes = trained_classes(pretrained)
    if classes is not None:
        if isinstance(classes, int):
            if classes < 1:
                raise InvalidInputError(f"classes must be >= 1, got {classes}")
            names = tuple(f"class_{i}" for i in range(classes))
        else:
            names = tuple(str(c) for c in classes)
            if not names:
                raise InvalidInputError("classes is an empty list")
    builder = resolve(spec.builder)
    net = builder(classes=len(names), **{**spec.kwargs, **kwargs})
    if pretrained is True or (pretrained is None and classes is None):
        shipped = shipped_weights(name)
        if pretrained is True and shipped is None:
            raise InvalidInputError(f"edgecv ships no trained weights for {name}")
        pretrained = shipped
    if pretrained is not None and pretrained is not False:
        path = Path(pretrained)
        if not path.is_file():
            raise InvalidInputError(f"pretrained weights file not found: {path}")
        try:
            net.load_parameters(str(path), ctx=mx.cpu())
        except (AssertionError, mx.base.MXNetError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InvalidInputError(f"cannot load {path} into {name}: {first}") from None
    else:
        # He initialisation (Xavier, gaussian, fan-in, magnitude 2): keeps activations alive
        # through deep ReLU networks, as GluonCV's training scripts initialise
        net.initialize(
            mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), ctx=mx.cpu()
        )
    net.edgecv_meta = ModelMeta(spec=spec, data=spec.data, classes=names)
    return net


def classes_file(weights: str | os.PathLike[str]) -> Path:
    """Where edgecv's training writes the class names of a weights file, beside it."""
    path = Path(weights)
    return path.with_name(path.stem + ".classes.txt")


def trained_classes(weights: str | os.PathLike[str]) -> tuple[str, ...] | None:
    """The class (pose: joint) names saved with weights that edgecv trained, if any: a
    model trained on other classes than its zoo name's rebuilds with them."""
    path = classes_file(weights)
    if not path.is_file():
        return None
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    return names or None


def shipped_weights(name: str) -> Path | None:
    """The weights file edgecv trained and ships for model ``name``, or None."""
    spec = MODELS.get(name)
    if not spec.weights:
        return None
    path = WEIGHTS_DIR / spec.weights
    return path if path.is_file() else None


__all__ = ["MODELS", "WEIGHTS_DIR", "ModelMeta", "get_model", "label_set", "shipped_weights"]
