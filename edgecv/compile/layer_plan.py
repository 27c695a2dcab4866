"""The layer planner shared by the kernel rewrite (offload.py) and the integer lowering
(int8_lowering.py): which bindings of a prepared Relax graph (relax_prepare.py) make one
layer, and what that layer is.

A layer is a conv2d / conv2d_transpose / matmul with constant float32 weights, together
with the chain after it that only it uses: per-channel affine ops (batch norm, bias) folded
into weights and bias, then ReLU / leaky ReLU / clip and at most one residual ``add`` of
another tensor, in either order (ResNet adds then activates, Darknet activates then adds),
and an NCHW↔NHWC transpose of the graph's input or output it can absorb. Also here: the
weights in the kernels' plain layout with the chain folded in (float64, rounded once), the
named layer groups recipes keep in float ("input", "output"), and a layer's summary entry.
This module reads the graph; it rewrites nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernel_abi import Act
from .relax_expr import binding_users, const_value, op_name, static_shape


@dataclass
class Layer:
    """A conv2d / matmul and the ops fused into it."""

    kind: str  # "conv" | "deconv" | "dense"
    head: Any  # the binding of the conv2d / conv2d_transpose / matmul
    data: Any  # its input var
    weight: np.ndarray  # conv: OHWI, deconv: IOHW (I × O/G × KH × KW), dense: K×N (as in the graph)
    channels: int
    scale: np.ndarray
    shift: np.ndarray
    residual: Any = None
    residual_after_act: bool = False
    src_nchw: bool = False  # reads the graph's NCHW input itself (no transpose before it)
    dst_nchw: bool = False  # writes an NCHW graph output itself (no transpose after it)
    act: int = Act.NONE
    alpha: float = 0.0
    beta: float = 0.0
    absorbed: list[Any] = field(default_factory=list)  # bindings folded in, in order
    transposes: list[Any] = field(default_factory=list)  # bindings made unneeded (or None)

    @property
    def end(self) -> Any:
        return self.absorbed[-1] if self.absorbed else self.head


def deconv_ok(value: Any) -> bool:
    """A conv2d_transpose oneDNN can run: constant float32 weights (IOHW), float32 data, an
    output padding within the bottom/right padding."""
    a = value.attrs
    w = const_value(value.args[1])
    return (
        w is not None
        and w.dtype == np.float32
        and a.kernel_layout == "IOHW"
        and str(value.args[0].ty.dtype) == "float32"
        and all(int(a.padding[2 + i]) >= int(a.output_padding[i]) for i in range(2))
    )


def _per_channel(c: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant that broadcasts along the last (channel) axis only, as a vector."""
    if c.dtype != np.float32:
        return None
    if c.size == 1:
        return np.full(channels, float(c.reshape(())), dtype=np.float64)
    if c.shape[-1] == channels and c.size == channels:
        return c.reshape(channels).astype(np.float64)
    return None


def _head(binding: Any) -> Layer | None:
    """A conv2d (NHWC/OHWI, float32) or 2-D matmul with a constant weight."""
    value = binding.value
    name = op_name(value)
    if name == "relax.nn.conv2d":
        a = value.attrs
        w = const_value(value.args[1])
        if (
            w is None
            or w.dtype != np.float32
            or a.data_layout != "NHWC"
            or a.kernel_layout != "OHWI"
            or a.out_layout != "NHWC"
            or str(value.args[0].ty.dtype) != "float32"
            or static_shape(value.args[0]) is None
        ):
            return None
        kind, channels = "conv", w.shape[0]
    elif name == "relax.nn.conv2d_transpose":
        a = value.attrs
        if (
            not deconv_ok(value)
            or a.data_layout != "NHWC"
            or a.out_layout != "NHWC"
            or static_shape(value.args[0]) is None
        ):
            return None
        w = const_value(value.args[1])
        kind, channels = "deconv", w.shape[1] * int(a.groups)
    elif name == "relax.matmul":
        w = const_value(value.args[1])
        x_shape = static_shape(value.args[0])
        if (
            w is None
            or w.dtype != np.float32
            or w.ndim != 2
            or x_shape is None
            or len(x_shape) != 2
        ):
            return None
        kind, channels = "dense", w.shape[1]
    else:
        return None
    return Layer(kind, binding, value.args[0], w, channels, np.ones(channels), np.zeros(channels))


def _extend(layer: Layer, user: Any) -> bool:
    """Fold ``user`` (the only use of the layer's current end) into the layer if it can."""
    value, cur = user.value, layer.end.var
    name = op_name(value)
    if layer.dst_nchw:  # the layer writes NCHW itself; nothing may follow
        return False
    if name in ("relax.add", "relax.subtract", "relax.multiply", "relax.divide"):
        a, b = value.args
        if name in ("relax.subtract", "relax.divide") and not a.same_as(cur):
            return False
        other = b if a.same_as(cur) else a
        c = const_value(other)
        if c is not None:
            if layer.residual is not None or layer.act != Act.NONE:
                return False
            v = _per_channel(c, layer.channels)
            if v is None:
                return False
            if name == "relax.add":
                layer.shift = layer.shift + v
            elif name == "relax.subtract":
                layer.shift = layer.shift - v
            elif name == "relax.multiply":
                layer.scale, layer.shift = layer.scale * v, layer.shift * v
            else:
                if np.any(v == 0):
                    return False
                layer.scale, layer.shift = layer.scale / v, layer.shift / v
            return True
        if (
            name == "relax.add"
            and layer.residual is None
            and static_shape(other) == static_shape(cur)
            and str(other.ty.dtype) == "float32"
        ):
            layer.residual = other
            layer.residual_after_act = layer.act != Act.NONE  # darknet: leaky ReLU, then add
            return True
        return False
    if layer.act == Act.NONE and name == "relax.nn.relu":
        layer.act = Act.RELU
        return True
    if layer.act == Act.NONE and name == "relax.nn.leakyrelu":
        layer.act, layer.alpha = Act.RELU, float(value.attrs.alpha)
        return True
    if layer.act == Act.NONE and name == "relax.nn.prelu" and value.args[0].same_as(cur):
        slope = const_value(value.args[1])
        if slope is None or slope.size == 0 or np.any(slope != slope.flat[0]):
            return False  # one slope per channel: not an eltwise post-op
        layer.act, layer.alpha = Act.RELU, float(slope.flat[0])
        return True
    if name == "relax.permute_dims" and layer.kind != "dense" and layer.residual is None:
        if _permute(user, [0, 3, 1, 2]) is None:
            return False
        layer.dst_nchw = True
        return True
    if name in ("relax.maximum", "relax.minimum") and value.args[0].same_as(cur):
        c = const_value(value.args[1])
        if c is None or c.size != 1:
            return False
        bound = float(c.reshape(()))
        if name == "relax.maximum" and layer.act == Act.NONE and bound == 0.0:
            layer.act = Act.RELU
            return True
        if name == "relax.minimum" and layer.act == Act.RELU and layer.alpha == 0.0:
            layer.act, layer.alpha, layer.beta = Act.CLIP, 0.0, bound
            return True
        return False
    if name == "relax.clip" and layer.act == Act.NONE:
        lo, hi = (float(getattr(v.value, "value", v.value)) for v in value.args[1:3])
        layer.act, layer.alpha, layer.beta = Act.CLIP, lo, hi
        return True
    return False


def plan_layers(func: Any, kinds: Any = ("conv", "deconv", "dense")) -> list[Layer]:
    """Find the layers (of the given kinds) to offload in ``func``'s dataflow block."""
    from tvm import relax

    bindings = [b for block in func.body.blocks for b in block.bindings]
    uses: Counter[Any] = Counter()
    user: dict[Any, Any] = {}

    def count(expr: Any, binding: Any) -> None:
        if isinstance(expr, relax.Var):
            uses[expr] += 1
            user[expr] = binding
        elif isinstance(expr, relax.Tuple):
            for f in expr.fields:
                count(f, binding)
        elif isinstance(expr, relax.Call):
            for a in expr.args:
                count(a, binding)
        elif isinstance(expr, relax.TupleGetItem):
            count(expr.tuple_value, binding)

    for b in bindings:
        count(b.value, b)
    count(func.body.body, None)
    bound = {b.var: b for b in bindings}
    claimed: set[Any] = set()
    layers = []
    for b in bindings:
        layer = _head(b)
        if layer is None or layer.kind not in kinds:
            continue
        if layer.kind != "dense":
            layer.transposes.append(_nchw_source(layer, bound, uses))
        while True:
            v = layer.end.var
            if not isinstance(v, relax.DataflowVar) or uses[v] != 1:
                break
            nxt = user.get(v)
            if nxt is None or nxt.var in claimed or not _extend(layer, nxt):
                break
            layer.absorbed.append(nxt)
            claimed.add(nxt.var)
        claimed.add(b.var)
        layers.append(layer)
    return layers


def _permute(binding: Any, axes: list[int]) -> Any | None:
    """The tensor that ``binding`` permutes with ``axes``, if that is what it does."""
    value = binding.value
    if op_name(value) != "relax.permute_dims" or value.attrs.axes is None:
        return None
    return value.args[0] if [int(a) for a in value.attrs.axes] == axes else None


def _nchw_source(layer: Layer, bound: dict[Any, Any], uses: Counter[Any]) -> Any:
    """A conv reading NCHW→NHWC ``permute_dims`` of a tensor (the graph input) reads that
    tensor itself; returns the transpose binding it replaces (None if none)."""
    src = bound.get(layer.data)
    if src is None or uses[layer.data] != 1:
        return None
    original = _permute(src, [0, 2, 3, 1])
    if original is None:
        return None
    layer.data, layer.src_nchw = original, True
    return src


def folded_weights(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """Weights in the kernel's plain layout with the affine chain folded in, and the bias."""
    w = layer.weight.astype(np.float64)
    if layer.kind == "conv":
        groups = int(layer.head.value.attrs.groups)
        o, kh, kw, i = w.shape
        w = w * layer.scale[:, None, None, None]
        w = w.transpose(0, 3, 1, 2).reshape(groups, o // groups, i, kh, kw)
    elif layer.kind == "deconv":  # I × O/G × KH × KW → G × O/G × I/G × KH × KW
        groups = int(layer.head.value.attrs.groups)
        i, og, kh, kw = w.shape
        w = w.reshape(groups, i // groups, og, kh, kw).transpose(0, 2, 1, 3, 4)
        w = w * layer.scale.reshape(groups, og)[:, :, None, None, None]
    else:  # K×N → N×K
        w = (w * layer.scale[None, :]).T
    return np.ascontiguousarray(w, dtype=np.float32), layer.shift.astype(np.float32)


def _terminal(func: Any, layers: list[Layer]) -> set[int]:
    """Indices of the layers whose result reaches no other offloaded layer (output heads)."""
    from tvm import relax

    inputs = {
        v for layer in layers for v in (layer.data, layer.residual) if isinstance(v, relax.Var)
    }
    users = binding_users(func)
    reaches: dict[Any, bool] = {}
    for b in reversed([b for block in func.body.blocks for b in block.bindings]):
        v = b.var
        reaches[v] = v in inputs or any(reaches.get(u, False) for u in users.get(v, []))
    return {i for i, layer in enumerate(layers) if not reaches.get(layer.end.var, False)}


def layer_selectors(func: Any, layers: list[Layer]) -> dict[str, set[int]]:
    """Named groups of layers that recipes may keep in float."""
    return {
        "input": {i for i, layer in enumerate(layers) if layer.src_nchw},
        "output": _terminal(func, layers),
    }


def layer_summary(
    index: int, layer: Layer, key: int, weight: np.ndarray, int8: bool
) -> dict[str, Any]:
    """One layer's entry in a rewrite's summary (the artifact report lists them)."""
    return {
        "index": index,
        "kind": layer.kind,
        "key": f"{key:016x}",
        "weight_shape": list(weight.shape),
        "precision": "int8" if int8 else "float32",
        "reads_input": layer.src_nchw,
    }


def resolve_keep_float(func: Any, layers: list[Layer], keep_float: list[str | int]) -> set[int]:
    """Layer indices named by ``keep_float`` (indices, or the groups of
    :func:`layer_selectors`)."""
    groups = layer_selectors(func, layers)
    floats: set[int] = set()
    for item in keep_float:
        if isinstance(item, int):
            floats.add(item)
        elif item in groups:
            floats |= groups[item]
        else:
            from ..errors import InvalidInputError

            raise InvalidInputError(
                f"unknown layer selector {item!r} (a layer index, or one of {sorted(groups)})"
            )
    return floats
