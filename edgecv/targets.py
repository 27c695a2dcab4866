"""Compilation targets, defined as TOML data files under ``targets/`` and validated on load."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import InvalidInputError
from .registry import Registry

PRECISIONS = ("fp32", "fp16", "int8")
DEVICES = ("cpu",)  # what this runtime can execute today
TVM_KINDS = ("llvm",)


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    device: str
    host_triple: str
    precisions: tuple[str, ...]
    tvm: dict[str, Any]  # the TVM target as a JSON-style dict
    source: Path

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise InvalidInputError(
                f"target {self.name!r} does not support precision {precision!r} "
                f"(supported: {', '.join(self.precisions)})"
            )


def targets_dir() -> Path:
    """Installed wheels carry the files in ``edgecv/targets``; a checkout has ``targets/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "targets", here.parent / "targets"):
        if candidate.is_dir():
            return candidate
    raise InvalidInputError(f"no targets directory next to {here}")


def _require(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    if key not in data:
        raise InvalidInputError(f"{path}: missing key {key!r}")
    if not isinstance(data[key], kind):
        raise InvalidInputError(f"{path}: {key!r} must be a {kind.__name__}")
    return data[key]


def parse_target(path: Path) -> Target:
    """Read and validate one target file."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidInputError(f"{path}: {err}") from None
    name = _require(data, "name", str, path)
    if name != path.stem:
        raise InvalidInputError(f"{path}: name {name!r} must match the file name")
    device = _require(data, "device", str, path)
    if device not in DEVICES:
        raise InvalidInputError(f"{path}: device {device!r} is not one of {DEVICES}")
    precisions = tuple(_require(data, "precisions", list, path))
    unknown = [p for p in precisions if p not in PRECISIONS]
    if not precisions or unknown:
        raise InvalidInputError(f"{path}: precisions must be a non-empty subset of {PRECISIONS}")
    tvm = dict(_require(data, "tvm", dict, path))
    if tvm.get("kind") not in TVM_KINDS:
        raise InvalidInputError(f"{path}: tvm.kind must be one of {TVM_KINDS}")
    return Target(
        name=name,
        description=_require(data, "description", str, path),
        device=device,
        host_triple=_require(data, "host_triple", str, path),
        precisions=precisions,
        tvm=tvm,
        source=path,
    )


@cache
def target_registry() -> Registry[Target]:
    registry: Registry[Target] = Registry("target")
    for path in sorted(targets_dir().glob("*.toml")):
        registry.add(path.stem, parse_target(path))
    return registry


def get_target(name: str) -> Target:
    return target_registry().get(name)


def list_targets() -> list[Target]:
    return list(target_registry())
