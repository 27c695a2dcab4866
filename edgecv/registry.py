"""One generic registry of named entries, with close-match suggestions for typos.

Entries are registered as data (a builder given as ``"module:function"``), so listing
or describing models never imports MXNet.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → entry mapping that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str, listing: str = "edgecv list") -> None:
        self.kind = kind
        self.listing = listing  # the command that lists the entries
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (see `{self.listing}`)"

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def resolve(path: str) -> Callable[..., Any]:
    """Import ``"package.module:attr"`` and return the attribute."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class DataConfig:
    """How an image becomes the network input; stored with each model and artifact.

    Pixel values are in 0..255; ``mean``/``std`` apply to those values, RGB order.
    """

    input_size: tuple[int, int] = (224, 224)  # (height, width)
    resize_short: int = 256  # short side before the center crop (resize == "short_crop")
    resize: str = "short_crop"  # short_crop | letterbox (keep ratio, pad) | stretch (to size)
    interpolation: str = "linear"
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    color: str = "RGB"

    def scaled(self, size: int) -> DataConfig:
        """The same rule at another input size: square, or for person crops ``size`` high
        with the aspect ratio kept (crop ratio kept)."""
        ratio = self.resize_short / self.input_size[0]
        h, w = self.input_size
        return DataConfig(
            input_size=(size, int(round(size * w / h)))
            if self.resize == "person_crop"
            else (size, size),
            resize_short=int(round(size * ratio)),
            resize=self.resize,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
            color=self.color,
        )


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: how to build the network and what it expects and produces."""

    name: str
    task: str
    family: str
    builder: str  # "module:function"
    kwargs: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = DataConfig()
    classes: str = "imagenet1k"  # a label-set name under edgecv/zoo/data/
    weights: str = ""  # weights trained by edgecv, shipped under edgecv/weights/ (if any)
