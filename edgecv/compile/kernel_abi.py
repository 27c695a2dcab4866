"""The settings of the kernel-library calls, by name: one record per kernel kind.

A compiled graph calls the C++ runtime's kernels (``edgecv.dnnl.conv2d``, ...) with a layer's
settings as one int64 array (a TVM ``ShapeExpr``): ``[version, fields..., key]``, the fields
in the order the record declares them (a nested record: its fields, in place), floats as
their IEEE float32 bits, booleans as 0/1. ``key`` is a content key over the rest and the
layer's constants: the runtime caches packed weights and primitives under it.
``runtime_cpp/src/kernel_abi.h`` declares the same records with the same field names and
decodes them; ``tests/test_kernel_abi.py`` encodes each here and decodes it there.

NumPy only (no TVM): the unit tests and the benchmark use it without the compiler.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import struct
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

# The layout's version: the first value of every settings array. Bump it with any change of
# a record below (and kSettingsVersion in kernel_abi.h); artifacts of another version are
# refused by the runtime.
VERSION = 3
KEY_MASK = (1 << 62) - 1  # keys are positive int64 (TVM shape values)


class Act(IntEnum):
    """The activation fused into a layer (oneDNN's definitions)."""

    NONE = 0
    RELU = 1  # slope ``alpha`` below 0 (leaky ReLU when alpha != 0)
    CLIP = 2  # to [alpha, beta]


class Residual(IntEnum):
    """Whether and where a conv adds its residual input."""

    NONE = 0
    ADD_THEN_ACT = 1  # ResNet
    ACT_THEN_ADD = 2  # Darknet


class Quant(IntEnum):
    """How an int8 layer's output or residual is stored."""

    FLOAT = 0
    UINT8 = 1
    INT8 = 2
    # a uint8 tensor (its calibrated range is >= 0) stored as int8, v - 128 (zero point -128):
    # XNNPACK's int8 operators take and give it as it is (XNNPACK int8 graphs only)
    UINT8_AS_INT8 = 3


class Pool(IntEnum):
    MAX = 0
    AVG_INCLUDE_PAD = 1  # average counting the padding
    AVG_EXCLUDE_PAD = 2


@dataclass(frozen=True)
class Activation:
    kind: int = Act.NONE
    alpha: float = 0.0
    beta: float = 0.0


@dataclass(frozen=True)
class Conv2d:
    """``conv2d`` and ``conv2d_transpose`` (float): NHWC activations, weights
    G × O/G × I/G × KH × KW. Pads as in Relax (top, left, bottom, right); a transposed conv's
    bottom/right ones are those of the conv it transposes less its output padding."""

    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    dilation_h: int
    dilation_w: int
    groups: int
    act: Activation = Activation()
    residual: int = Residual.NONE
    src_nchw: bool = False  # reads the graph's NCHW input itself
    dst_nchw: bool = False  # writes an NCHW graph output itself


@dataclass(frozen=True)
class Conv2dQ8:
    """``conv2d_q8``: the float layer's settings, then how its tensors are quantised (the
    input always: uint8, or int8 when signed; output and residual: :class:`Quant`; scales
    are the float value of one step, 0 for a float tensor; ``input_as_int8``: a uint8
    input arrives stored as :attr:`Quant.UINT8_AS_INT8`)."""

    conv: Conv2d
    input_scale: float
    input_signed: bool
    output_kind: int = Quant.FLOAT
    output_scale: float = 0.0
    residual_kind: int = Quant.FLOAT
    residual_scale: float = 0.0
    input_as_int8: bool = False


@dataclass(frozen=True)
class Dense:
    """``dense`` (float): x [M, K], weights [N, K]."""

    act: Activation = Activation()


@dataclass(frozen=True)
class DenseQ8:
    """``dense_q8``: as :class:`Conv2dQ8`, without a residual."""

    dense: Dense
    input_scale: float
    input_signed: bool
    output_kind: int = Quant.FLOAT
    output_scale: float = 0.0
    input_as_int8: bool = False


@dataclass(frozen=True)
class Pool2d:
    """``pool2d``: NHWC max / average pooling (:class:`Pool`); the bottom/right pads are
    already extended for ceil mode."""

    kind: int
    window_h: int
    window_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int


Settings = Conv2d | Conv2dQ8 | Dense | DenseQ8 | Pool2d
# kernel kind (the kernel function's name after the library's prefix) -> its record
KINDS: dict[str, type] = {
    "conv2d": Conv2d,
    "conv2d_transpose": Conv2d,
    "conv2d_q8": Conv2dQ8,
    "dense": Dense,
    "dense_q8": DenseQ8,
    "pool2d": Pool2d,
}


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _float_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


def _bits_float(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def _leaves(record: Any) -> Iterator[int]:
    for name, kind in _fields(type(record)):
        value = getattr(record, name)
        if dataclasses.is_dataclass(kind):
            yield from _leaves(value)
        elif kind is float:
            yield _float_bits(value)
        else:  # int, bool
            yield int(value)


def size(kind: str) -> int:
    """Values in the settings of a kernel kind, version and key included."""
    return 2 + _count(KINDS[kind])


def _count(cls: type) -> int:
    return sum(_count(t) if dataclasses.is_dataclass(t) else 1 for _, t in _fields(cls))


def content_key(head: list[int], content: Iterable[np.ndarray] = ()) -> int:
    """The key of settings ``head`` (all but the key) and a layer's constants."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.asarray(head, dtype="<i8").tobytes())
    for a in content:
        digest.update(a.tobytes())
    return int.from_bytes(digest.digest(), "little") & KEY_MASK


def encode(
    settings: Settings, *, content: Iterable[np.ndarray] = (), key: int | None = None
) -> list[int]:
    """``[VERSION, fields..., key]``: the settings array of a kernel call. ``key``: given, or
    computed from the fields and ``content`` (the layer's weights, bias, ...), so that equal
    keys mean equal layers."""
    if type(settings) not in KINDS.values():
        raise TypeError(f"not a kernel settings record: {settings!r}")
    head = [VERSION, *_leaves(settings)]
    return [*head, content_key(head, content) if key is None else key]


def decode(kind: str, values: Iterable[int]) -> tuple[Settings, int]:
    """A settings array of kernel ``kind`` back to (record, key); what the runtime reads."""
    values = [int(v) for v in values]
    cls = KINDS[kind]
    if not values or values[0] != VERSION:
        raise ValueError(
            f"{kind}: settings of version {values[0] if values else None}, this edgecv "
            f"reads version {VERSION}"
        )
    if len(values) != size(kind):
        raise ValueError(f"{kind}: {len(values)} settings values, expected {size(kind)}")
    it = iter(values[1:-1])

    def build(cls: type) -> Any:
        args = {}
        for name, t in _fields(cls):
            if dataclasses.is_dataclass(t):
                args[name] = build(t)
            elif t is float:
                args[name] = _bits_float(next(it))
            else:
                args[name] = t(next(it))
        return cls(**args)

    return build(cls), values[-1]


def as_dict(settings: Settings, key: int) -> dict[str, Any]:
    """The record's fields by name (nested records as dicts) and its key: what
    ``edgecv._runtime.decode_kernel_settings`` returns for its settings array."""
    return {**dataclasses.asdict(settings), "key": key}
