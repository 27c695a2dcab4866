"""The int8 plan of the planned layers, shared by both int8 paths (the oneDNN int8 calls of
offload.py and the integer Relax ops of int8_lowering.py): what calibration hands the
rewrite (:class:`Quantization`), the weights quantised symmetric per output channel to int8,
and which layer outputs (and residuals, and max pools after them) can stay quantised
between int8 layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import kernel_abi
from .layer_plan import Layer
from .relax_expr import binding_users


@dataclass
class Quantization:
    """What the int8 rewrite needs from calibration."""

    inputs: dict[int, tuple[float, bool]]  # float layer key -> (input scale, input signed)
    keep_float: set[int] = field(default_factory=set)  # layer indices (graph order) kept float


def quantize_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8: (int8 weights, float32 scale per channel).

    The output channel is the first axis (dense N×K) or the first two (conv G×O/G×...)."""
    rows = (
        weight.reshape(-1, weight.shape[-1])
        if weight.ndim == 2
        else weight.reshape(weight.shape[0] * weight.shape[1], -1)
    )
    amax = np.abs(rows).max(axis=1).astype(np.float64)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    return q.reshape(weight.shape), scale.astype(np.float32)


def int8_outputs(
    func: Any,
    layers: list[Layer],
    qs: list[tuple[float, bool] | None],
    pools: dict[Any, kernel_abi.Pool2d],
) -> tuple[
    list[tuple[float, bool] | None], list[tuple[float, bool] | None], dict[Any, tuple[float, bool]]
]:
    """Per layer: the (scale, signed) its output can be written in, quantised, and the
    (scale, signed) its residual arrives in (None: float); and the max pools that then run
    on quantised data (pool output var -> (scale, signed)). ``pools``: :func:`offloadable_pools`.

    An output is written quantised when every use of it is an int8 layer calibrated with
    one scale: as that layer's input, or as the residual of an int8 layer (the ResNet block
    output that feeds the next block's first conv and its residual add). It needs at least
    one reader to give the scale, an activation that commutes with a positive scale (none,
    ReLU, leaky ReLU, clip with rescaled bounds) and an NHWC output. A layer whose only use
    is a max pool (ResNet's stem) is judged by the pool's uses: max commutes with rounding
    and clipping, so the pool can run on the quantised tensor and hand it on."""
    from tvm import relax

    users = binding_users(func)
    bound = {b.var: b.value for block in func.body.blocks for b in block.bindings}
    max_pools = {  # output var -> input var
        v: bound[v].args[0]
        for v, settings in pools.items()
        if settings.kind == kernel_abi.Pool.MAX and isinstance(bound[v].args[0], relax.Var)
    }
    readers: dict[Any, list[int]] = {}
    residual_users: dict[Any, list[int]] = {}
    for i, layer in enumerate(layers):
        if isinstance(layer.data, relax.Var):
            readers.setdefault(layer.data, []).append(i)
        if isinstance(layer.residual, relax.Var) and qs[i] is not None and not layer.dst_nchw:
            residual_users.setdefault(layer.residual, []).append(i)
    out: list[tuple[float, bool] | None] = []
    produced: dict[Any, tuple[float, bool] | None] = {}
    pooled: dict[Any, tuple[float, bool]] = {}
    for i, layer in enumerate(layers):
        var = layer.end.var
        only = users.get(var, [])
        via_pool = len(only) == 1 and only[0] in max_pools and max_pools[only[0]].same_as(var)
        if via_pool:
            var = only[0]
        rs = readers.get(var, [])
        wanted = {qs[r] for r in rs}
        uses = len(rs) + len(residual_users.get(var, []))
        ok = (
            qs[i] is not None
            and layer.kind == "conv"
            and not layer.dst_nchw
            and rs
            and len(users.get(var, [])) == uses  # no other use
            and len(wanted) == 1
            and None not in wanted
        )
        out.append(next(iter(wanted)) if ok else None)
        produced[var] = out[i]
        if via_pool and out[i] is not None:
            pooled[var] = out[i]
    residual = [
        produced.get(layer.residual) if i in residual_users.get(layer.residual, []) else None
        for i, layer in enumerate(layers)
    ]
    return out, residual, pooled
