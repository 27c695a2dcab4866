"""Training recipes as data: ``<model>.json`` here holds the settings edgecv trained that
model with (any :class:`~edgecv.train.common.TrainConfig` field)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ...errors import InvalidInputError
from ..common import TrainConfig

RECIPES_DIR = Path(__file__).parent


def load_recipe(
    model: str, path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """The recipe at ``path``, else the model's shipped recipe, else the defaults; then
    ``overrides`` (e.g. from the command line)."""
    doc: dict[str, Any] = {}
    source = Path(path) if path else RECIPES_DIR / f"{model}.json"
    if path and not source.is_file():
        raise InvalidInputError(f"recipe file not found: {source}")
    if source.is_file():
        try:
            doc = json.loads(source.read_text())
        except json.JSONDecodeError as err:
            raise InvalidInputError(f"{source} is not valid JSON: {err}") from None
        doc.pop("comment", None)
    doc.update(overrides or {})
    return TrainConfig.from_dict(doc)
