"""What each kernel call of the rewrite is: the functions edgecv's C++ runtime registers
(per kernel library and layer kind) and the settings record a planned layer or pooling
binding passes to them, encoded by :mod:`edgecv.compile.kernel_abi` (the one encoder of the
settings ABI; nothing here builds a settings array by hand).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import kernel_abi
from .layer_plan import Layer
from .relax_expr import op_name, static_shape

CONV = "edgecv.dnnl.conv2d"
DECONV = "edgecv.dnnl.conv2d_transpose"
DENSE = "edgecv.dnnl.dense"
# the float kernel functions of each library, by layer kind
KERNELS = {
    "dnnl": {"conv": CONV, "deconv": DECONV, "dense": DENSE},
    "xnnpack": {
        "conv": "edgecv.xnnpack.conv2d",
        "deconv": "edgecv.xnnpack.conv2d_transpose",
        "dense": "edgecv.xnnpack.dense",
    },
}
POOL = "edgecv.dnnl.pool2d"  # max / average pooling (oneDNN only)
CONV_Q8 = "edgecv.dnnl.conv2d_q8"
DENSE_Q8 = "edgecv.dnnl.dense_q8"
# the int8 kernel functions of each library that has them, by layer kind (the same
# arguments and settings in both)
KERNELS_Q8 = {
    "dnnl": {"conv": CONV_Q8, "dense": DENSE_Q8},
    "xnnpack": {"conv": "edgecv.xnnpack.conv2d_q8", "dense": "edgecv.xnnpack.dense_q8"},
}


def layer_record(layer: Layer) -> kernel_abi.Conv2d | kernel_abi.Dense:
    """The float kernel's settings record of a layer."""
    act = kernel_abi.Activation(layer.act, layer.alpha, layer.beta)
    if layer.kind == "dense":
        return kernel_abi.Dense(act)
    a = layer.head.value.attrs
    # a transposed conv's output padding extends the output at the bottom/right: oneDNN
    # takes it as that much less padding there
    extra = [int(v) for v in a.output_padding] if layer.kind == "deconv" else [0, 0]
    residual = (
        kernel_abi.Residual.NONE
        if layer.residual is None
        else kernel_abi.Residual.ACT_THEN_ADD
        if layer.residual_after_act
        else kernel_abi.Residual.ADD_THEN_ACT
    )
    return kernel_abi.Conv2d(
        stride_h=int(a.strides[0]),
        stride_w=int(a.strides[1]),
        pad_top=int(a.padding[0]),
        pad_left=int(a.padding[1]),
        pad_bottom=int(a.padding[2]) - extra[0],
        pad_right=int(a.padding[3]) - extra[1],
        dilation_h=int(a.dilation[0]),
        dilation_w=int(a.dilation[1]),
        groups=int(a.groups),
        act=act,
        residual=residual,
        src_nchw=layer.src_nchw,
        dst_nchw=layer.dst_nchw,
    )


def float_settings(layer: Layer, weight: np.ndarray, bias: np.ndarray) -> list[int]:
    """The float kernel's settings array, keyed by the layer's folded weights and bias."""
    return kernel_abi.encode(layer_record(layer), content=[weight, bias])


def pool_settings(value: Any, out_shape: tuple[int, ...] | None) -> kernel_abi.Pool2d | None:
    """Settings of ``edgecv.dnnl.pool2d`` for a Relax max/avg pooling call it can run (NHWC
    float, no dilation; average pooling only where ceil mode adds no padding), else None."""
    name = op_name(value)
    if name not in ("relax.nn.max_pool2d", "relax.nn.avg_pool2d") or out_shape is None:
        return None
    a, x = value.attrs, value.args[0]
    shape = static_shape(x)
    if (
        shape is None
        or len(shape) != 4
        or str(x.ty.dtype) != "float32"
        or str(a.layout) != "NHWC"
        or str(a.out_layout) != "NHWC"
        or any(int(d) != 1 for d in a.dilation)
    ):
        return None
    k, st, pad = (
        [int(v) for v in a.pool_size],
        [int(v) for v in a.strides],
        [int(v) for v in a.padding],
    )
    # ceil mode: the bottom/right padding that makes the output as large as the graph's
    for i in range(2):
        need = (out_shape[1 + i] - 1) * st[i] + k[i] - shape[1 + i] - pad[i]
        if need > pad[2 + i]:
            if name == "relax.nn.avg_pool2d":
                return None  # what the extra cells count for differs between conventions
            pad[2 + i] = need
    kind = (
        kernel_abi.Pool.MAX
        if name == "relax.nn.max_pool2d"
        else kernel_abi.Pool.AVG_INCLUDE_PAD
        if bool(a.count_include_pad)
        else kernel_abi.Pool.AVG_EXCLUDE_PAD
    )
    return kernel_abi.Pool2d(kind, *k, *st, *pad)


def offloadable_pools(func: Any) -> dict[Any, kernel_abi.Pool2d]:
    """The pooling bindings ``edgecv.dnnl.pool2d`` can run: binding var -> its settings."""
    return {
        b.var: settings
        for block in func.body.blocks
        for b in block.bindings
        if (settings := pool_settings(b.value, static_shape(b.var))) is not None
    }


def _quant(q: tuple[float, bool] | None, as_int8: bool) -> tuple[kernel_abi.Quant, float]:
    """(kind, scale) of a tensor an int8 layer writes or reads: (scale, signed), None: float;
    ``as_int8``: a uint8 one stored as int8."""
    if q is None:
        return kernel_abi.Quant.FLOAT, 0.0
    if q[1]:
        return kernel_abi.Quant.INT8, q[0]
    return (kernel_abi.Quant.UINT8_AS_INT8 if as_int8 else kernel_abi.Quant.UINT8), q[0]


def quantised_dtype(q: tuple[float, bool], as_int8: bool) -> str:
    """The storage type of a quantised tensor (scale, signed)."""
    return "int8" if q[1] or as_int8 else "uint8"


def q8_settings(
    layer: kernel_abi.Conv2d | kernel_abi.Dense,
    scale: float,
    signed: bool,
    arrays: list[np.ndarray],
    out: tuple[float, bool] | None = None,
    residual: tuple[float, bool] | None = None,
    *,
    input_quantised: bool = False,
    as_int8: bool = False,
) -> list[int]:
    """The int8 kernel's settings array: the float layer's settings, the input's scale and
    sign, how output (and, for convolutions, residual) are stored, keyed by all of it and the
    quantised weights. ``as_int8`` (XNNPACK): uint8 tensors between int8 layers are stored as
    int8, v - 128 (``Quant.UINT8_AS_INT8``); ``input_quantised``: the input arrives so (else
    it is float, quantised by the kernel)."""
    out_kind, out_scale = _quant(out, as_int8)
    in_as_int8 = as_int8 and input_quantised and not signed
    if isinstance(layer, kernel_abi.Dense):  # dense layers take no residual
        record: kernel_abi.Settings = kernel_abi.DenseQ8(
            layer, scale, signed, out_kind, out_scale, in_as_int8
        )
    else:
        res_kind, res_scale = _quant(residual, as_int8)
        record = kernel_abi.Conv2dQ8(
            layer, scale, signed, out_kind, out_scale, res_kind, res_scale, in_as_int8
        )
    return kernel_abi.encode(record, content=arrays)
