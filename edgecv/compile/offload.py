"""Kernel-library offload: convolutions and dense layers leave the TVM graph for oneDNN
(x86) or XNNPACK (ARM).

Untuned TVM code on a CPU is unscheduled and single-threaded (ResNet-18: 1.5 s against
ONNX Runtime's 8 ms). oneDNN has tuned x86 kernels, XNNPACK tuned ARM (NEON) ones, for
exactly the layers that dominate vision models, so they are replaced by calls to functions
that edgecv's C++ runtime registers (``runtime_cpp/src/kernels_dnnl.cc``,
``kernels_xnnpack.cc``); everything else stays TVM-generated. Both libraries take the same
arguments and settings; XNNPACK's wrapper is float only.

The rewrite, on the imported Relax module:
  1. inference decomposition (batch norm → affine), constant folding, ONNX ``Clip`` with
     constant bounds back to maximum/minimum, activations in NHWC (``ConvertLayout``), so
     that offloaded layers hand each other NHWC tensors with no transposes between them;
  2. every conv2d / matmul with constant weights, together with the chain after it that
     only it uses: per-channel affine ops (batch norm, bias) folded into weights and bias,
     then ReLU / leaky ReLU / clip and at most one residual ``add`` of another tensor, in
     either order (ResNet adds then activates, Darknet activates then adds),
     becomes one ``call_dps_packed("edgecv.dnnl.conv2d" | "edgecv.dnnl.dense", ...)``.
     Weights go to the call as constants in a plain layout (conv: G×O/G×I/G×KH×KW,
     dense: N×K); the settings shape (a record of ``kernel_abi``) carries strides, padding,
     dilation, groups, the activation and a content key under which the runtime caches its
     packed weights;
  3. (oneDNN) NHWC max / average pooling becomes ``edgecv.dnnl.pool2d``.

int8 (``Quantization``): a layer whose float version has an entry in the calibration table
(keyed by the float layer's content key, which the calibration run observed) becomes a call
to ``conv2d_q8`` / ``dense_q8``: weights quantised here, symmetric per output channel to
int8 (scale = max|w| / 127), the input quantised by the kernel with the table's scale
(int8 if the input can be negative, else uint8); oneDNN computes in int8 with int32
accumulation. An output whose every use is an int8 layer of one input scale is written in
uint8/int8 with that scale, a residual add included (the next layer then takes it quantised
too); other outputs are float. Layers the recipe names stay float.

Folding is done in float64 and rounded once, so the offloaded graph agrees with ONNX
Runtime to float32 rounding (checked at compile time like every artifact).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import kernel_abi
from .kernel_abi import Act

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
SETTINGS_VERSION = kernel_abi.VERSION
ACT_NONE, ACT_RELU, ACT_CLIP = Act.NONE, Act.RELU, Act.CLIP


@dataclass
class _Layer:
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
    act: int = ACT_NONE
    alpha: float = 0.0
    beta: float = 0.0
    absorbed: list[Any] = field(default_factory=list)  # bindings folded in, in order
    transposes: list[Any] = field(default_factory=list)  # bindings made unneeded (or None)

    @property
    def end(self) -> Any:
        return self.absorbed[-1] if self.absorbed else self.head


def prepare(mod: Any, library: str = "dnnl") -> Any:
    """Steps before the rewrite: decomposition, folding, NHWC activations."""
    import tvm
    from tvm import relax

    def seq(*passes: Any) -> Any:
        return tvm.transform.Sequential(list(passes))

    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = seq(
        _fold_numpy(), relax.transform.FoldConstant(), relax.transform.CanonicalizeBindings()
    )(mod)
    mod = _normalize_ops(mod)
    # transposed convolutions go NHWC only when every one of them will be offloaded: TVM
    # legalizes them in NCHW only
    offloadable = "deconv" in KERNELS[library] and _deconvs_offloadable(mod["main"])
    deconv_layout = "NHWC" if offloadable else "NCHW"
    layouts = {
        "relax.nn.conv2d": ["NHWC", "OHWI"],
        "relax.image.resize2d": ["NHWC"],
        "relax.nn.conv2d_transpose": [deconv_layout, "IOHW"],
    }
    mod = seq(
        relax.transform.ConvertLayout(layouts),
        _fold_numpy(),
        relax.transform.FoldConstant(),
        relax.transform.CanonicalizeBindings(),
        relax.transform.DeadCodeElimination(),
    )(mod)
    return mod


def _deconv_ok(value: Any) -> bool:
    """A conv2d_transpose oneDNN can run: constant float32 weights (IOHW), float32 data, an
    output padding within the bottom/right padding."""
    a = value.attrs
    w = _const(value.args[1])
    return (
        w is not None
        and w.dtype == np.float32
        and a.kernel_layout == "IOHW"
        and str(value.args[0].ty.dtype) == "float32"
        and all(int(a.padding[2 + i]) >= int(a.output_padding[i]) for i in range(2))
    )


def _deconvs_offloadable(func: Any) -> bool:
    calls = [
        b.value
        for block in func.body.blocks
        for b in block.bindings
        if _op_name(b.value) == "relax.nn.conv2d_transpose"
    ]
    return all(_deconv_ok(v) for v in calls)


_NUMPY_BINARY = {
    "relax.add": np.add,
    "relax.subtract": np.subtract,
    "relax.multiply": np.multiply,
    "relax.divide": np.divide,
    "relax.power": np.power,
    "relax.maximum": np.maximum,
    "relax.minimum": np.minimum,
}
_NUMPY_UNARY = {
    "relax.sqrt": np.sqrt,
    "relax.rsqrt": lambda a: np.ones((), a.dtype) / np.sqrt(a),
    "relax.negative": np.negative,
    "relax.exp": np.exp,
}
_NUMPY_RESHAPE = ("relax.reshape", "relax.expand_dims", "relax.squeeze")  # to the call's shape


def _numpy_value(call: Any) -> np.ndarray | None:
    """The value of ``call`` computed in NumPy, if it is an op on constants it knows."""
    name = _op_name(call)
    known = (*_NUMPY_BINARY, *_NUMPY_UNARY, *_NUMPY_RESHAPE, "relax.permute_dims")
    if name not in known:
        return None  # before any argument is copied out (conv weights are large)
    args = [_const(a) for a in call.args]
    if name in _NUMPY_BINARY and len(args) == 2 and all(a is not None for a in args):
        a, b = args
        if a.dtype != b.dtype or a.dtype.kind != "f":
            return None
        return np.asarray(_NUMPY_BINARY[name](a, b), dtype=a.dtype)
    if name in _NUMPY_UNARY and len(args) == 1 and args[0] is not None:
        if args[0].dtype.kind != "f":
            return None
        return np.asarray(_NUMPY_UNARY[name](args[0]), dtype=args[0].dtype)
    if name == "relax.permute_dims" and args[0] is not None:
        axes = call.attrs.axes
        return np.ascontiguousarray(
            args[0].transpose(None if axes is None else [int(x) for x in axes])
        )
    if name in _NUMPY_RESHAPE and args[0] is not None:
        shape = _shape(call)
        return None if shape is None else args[0].reshape(shape)
    return None


def _fold_numpy() -> Any:
    """Constant folding of the weight arithmetic (batch norm's decomposition, layout
    transposes of weights) in NumPy. TVM's FoldConstant builds and runs a kernel for every
    such op: ~14 s per pass on Darknet-53, where NumPy takes a fraction of a second. What this
    does not know is left to FoldConstant."""
    import tvm
    from tvm import relax

    @tvm.transform.module_pass(opt_level=0, name="EdgecvFoldNumpy")
    def fold(mod: Any, _ctx: Any) -> Any:
        @relax.expr_functor.mutator
        class Fold(relax.PyExprMutator):  # type: ignore[misc]
            def __init__(self, mod: Any) -> None:
                super().__init__(mod)
                self.known: dict[Any, Any] = {}

            def visit_var_(self, var: Any) -> Any:  # noqa: N802 - TVM's visitor name
                return self.known.get(var) or super().visit_var_(var)

            def visit_dataflow_var_(self, var: Any) -> Any:  # noqa: N802
                return self.known.get(var) or super().visit_dataflow_var_(var)

            def visit_call_(self, call: Any) -> Any:  # noqa: N802
                call = super().visit_call_(call)
                folded = _numpy_value(call)
                return call if folded is None else relax.const(folded)

            def visit_var_binding_(self, binding: Any) -> None:  # noqa: N802
                if not isinstance(binding.var, relax.DataflowVar):
                    super().visit_var_binding_(binding)  # outputs: TVM's own handling
                    return
                value = self.visit_expr(binding.value)
                if isinstance(value, tvm.ir.expr.Constant):
                    self.known[binding.var] = value  # its uses see the constant
                else:
                    _emit_as(self, binding.var, value)

        out = mod.clone() if hasattr(mod, "clone") else mod
        for gv, func in list(mod.functions.items()):
            if isinstance(func, relax.Function):
                out[gv] = Fold(mod).visit_expr(func)
        return out

    return fold


def _emit_as(mutator: Any, var: Any, value: Any) -> None:
    """Bind ``value`` (already visited) in place of ``var``'s binding in a dataflow block."""
    from tvm import relax

    if isinstance(var, relax.DataflowVar):
        new = mutator.builder_.emit(value, var.name)
    else:  # a block output
        new = mutator.builder_.emit_output(value, var.name)
    mutator.set_var_remap(var, new)


def _normalize_ops(mod: Any) -> Any:
    """Ops in forms ConvertLayout and the fusion below can see.

    ONNX ``Clip`` with bounds given as inputs imports as ``call_tir`` of TOPI's maximum /
    minimum: made Relax ops again. ``leakyrelu`` has no layout rule in TVM 0.27 (it would stay
    NCHW, with two transposes around every one): the same function as a ``prelu`` with one
    slope for all channels, which has one.
    """
    import tvm
    from tvm import relax

    names = {gv: gv.name_hint for gv in mod.get_global_vars()}
    call_tir = tvm.ir.Op.get("relax.call_tir")
    leaky = tvm.ir.Op.get("relax.nn.leakyrelu")

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):  # type: ignore[misc]
        def visit_call_(self, call: Any) -> Any:  # noqa: N802 - TVM's visitor name
            call = super().visit_call_(call)
            if call.op == leaky:
                shape = _shape(call.args[0])
                if shape is None or len(shape) != 4 or str(call.args[0].ty.dtype) != "float32":
                    return call
                slope = np.full(shape[1], float(call.attrs.alpha), dtype=np.float32)
                return relax.op.nn.prelu(call.args[0], relax.const(slope), axis=1)
            if call.op != call_tir or len(call.args) < 2:
                return call
            m = re.fullmatch(r"(maximum|minimum)\d*", names.get(call.args[0], ""))
            args = call.args[1]
            if m is None or not isinstance(args, relax.Tuple) or len(args.fields) != 2:
                return call
            x, bound = args.fields
            if not isinstance(bound, tvm.ir.expr.Constant) or bound.value.numpy().size != 1:
                return call
            op = relax.op.maximum if m.group(1) == "maximum" else relax.op.minimum
            return op(x, bound)

    main = Rewrite(mod).visit_expr(mod["main"])
    mod = mod.clone() if hasattr(mod, "clone") else mod
    mod["main"] = main
    return mod


def _op_name(value: Any) -> str | None:
    import tvm
    from tvm import relax

    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        return str(value.op.name)
    return None


def _const(expr: Any) -> np.ndarray | None:
    import tvm

    return expr.value.numpy() if isinstance(expr, tvm.ir.expr.Constant) else None


def _per_channel(c: np.ndarray, channels: int) -> np.ndarray | None:
    """A constant that broadcasts along the last (channel) axis only, as a vector."""
    if c.dtype != np.float32:
        return None
    if c.size == 1:
        return np.full(channels, float(c.reshape(())), dtype=np.float64)
    if c.shape[-1] == channels and c.size == channels:
        return c.reshape(channels).astype(np.float64)
    return None


def _shape(expr: Any) -> tuple[int, ...] | None:
    sinfo = expr.ty
    if not hasattr(sinfo, "shape") or sinfo.shape is None or not hasattr(sinfo.shape, "values"):
        return None
    try:
        return tuple(int(v) for v in sinfo.shape.values)
    except TypeError:  # symbolic dims
        return None


def _head(binding: Any) -> _Layer | None:
    """A conv2d (NHWC/OHWI, float32) or 2-D matmul with a constant weight."""
    value = binding.value
    name = _op_name(value)
    if name == "relax.nn.conv2d":
        a = value.attrs
        w = _const(value.args[1])
        if (
            w is None
            or w.dtype != np.float32
            or a.data_layout != "NHWC"
            or a.kernel_layout != "OHWI"
            or a.out_layout != "NHWC"
            or str(value.args[0].ty.dtype) != "float32"
            or _shape(value.args[0]) is None
        ):
            return None
        kind, channels = "conv", w.shape[0]
    elif name == "relax.nn.conv2d_transpose":
        a = value.attrs
        if (
            not _deconv_ok(value)
            or a.data_layout != "NHWC"
            or a.out_layout != "NHWC"
            or _shape(value.args[0]) is None
        ):
            return None
        w = _const(value.args[1])
        kind, channels = "deconv", w.shape[1] * int(a.groups)
    elif name == "relax.matmul":
        w = _const(value.args[1])
        x_shape = _shape(value.args[0])
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
    return _Layer(kind, binding, value.args[0], w, channels, np.ones(channels), np.zeros(channels))


def _extend(layer: _Layer, user: Any) -> bool:
    """Fold ``user`` (the only use of the layer's current end) into the layer if it can."""
    value, cur = user.value, layer.end.var
    name = _op_name(value)
    if layer.dst_nchw:  # the layer writes NCHW itself; nothing may follow
        return False
    if name in ("relax.add", "relax.subtract", "relax.multiply", "relax.divide"):
        a, b = value.args
        if name in ("relax.subtract", "relax.divide") and not a.same_as(cur):
            return False
        other = b if a.same_as(cur) else a
        c = _const(other)
        if c is not None:
            if layer.residual is not None or layer.act != ACT_NONE:
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
            and _shape(other) == _shape(cur)
            and str(other.ty.dtype) == "float32"
        ):
            layer.residual = other
            layer.residual_after_act = layer.act != ACT_NONE  # darknet: leaky ReLU, then add
            return True
        return False
    if layer.act == ACT_NONE and name == "relax.nn.relu":
        layer.act = ACT_RELU
        return True
    if layer.act == ACT_NONE and name == "relax.nn.leakyrelu":
        layer.act, layer.alpha = ACT_RELU, float(value.attrs.alpha)
        return True
    if layer.act == ACT_NONE and name == "relax.nn.prelu" and value.args[0].same_as(cur):
        slope = _const(value.args[1])
        if slope is None or slope.size == 0 or np.any(slope != slope.flat[0]):
            return False  # one slope per channel: not an eltwise post-op
        layer.act, layer.alpha = ACT_RELU, float(slope.flat[0])
        return True
    if name == "relax.permute_dims" and layer.kind != "dense" and layer.residual is None:
        if _permute(user, [0, 3, 1, 2]) is None:
            return False
        layer.dst_nchw = True
        return True
    if name in ("relax.maximum", "relax.minimum") and value.args[0].same_as(cur):
        c = _const(value.args[1])
        if c is None or c.size != 1:
            return False
        bound = float(c.reshape(()))
        if name == "relax.maximum" and layer.act == ACT_NONE and bound == 0.0:
            layer.act = ACT_RELU
            return True
        if name == "relax.minimum" and layer.act == ACT_RELU and layer.alpha == 0.0:
            layer.act, layer.alpha, layer.beta = ACT_CLIP, 0.0, bound
            return True
        return False
    if name == "relax.clip" and layer.act == ACT_NONE:
        lo, hi = (float(getattr(v.value, "value", v.value)) for v in value.args[1:3])
        layer.act, layer.alpha, layer.beta = ACT_CLIP, lo, hi
        return True
    return False


def _plan(func: Any, kinds: Any = ("conv", "deconv", "dense")) -> list[_Layer]:
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
    if _op_name(value) != "relax.permute_dims" or value.attrs.axes is None:
        return None
    return value.args[0] if [int(a) for a in value.attrs.axes] == axes else None


def _nchw_source(layer: _Layer, bound: dict[Any, Any], uses: Counter[Any]) -> Any:
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


def _layer_settings(layer: _Layer) -> kernel_abi.Conv2d | kernel_abi.Dense:
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


def _settings(layer: _Layer, weight: np.ndarray, bias: np.ndarray) -> list[int]:
    """The float kernel's settings array, keyed by the layer's folded weights and bias."""
    return kernel_abi.encode(_layer_settings(layer), content=[weight, bias])


def _pool_settings(value: Any, out_shape: tuple[int, ...] | None) -> kernel_abi.Pool2d | None:
    """Settings of ``edgecv.dnnl.pool2d`` for a Relax max/avg pooling call it can run (NHWC
    float, no dilation; average pooling only where ceil mode adds no padding), else None."""
    name = _op_name(value)
    if name not in ("relax.nn.max_pool2d", "relax.nn.avg_pool2d") or out_shape is None:
        return None
    a, x = value.attrs, value.args[0]
    shape = _shape(x)
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


def _pools(func: Any) -> dict[Any, kernel_abi.Pool2d]:
    """The pooling bindings ``edgecv.dnnl.pool2d`` can run: binding var -> its settings."""
    return {
        b.var: settings
        for block in func.body.blocks
        for b in block.bindings
        if (settings := _pool_settings(b.value, _shape(b.var))) is not None
    }


def _folded(layer: _Layer) -> tuple[np.ndarray, np.ndarray]:
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


def _quant(q: tuple[float, bool] | None) -> tuple[kernel_abi.Quant, float]:
    """(kind, scale) of a tensor an int8 layer writes or reads: (scale, signed), None: float."""
    if q is None:
        return kernel_abi.Quant.FLOAT, 0.0
    return (kernel_abi.Quant.INT8 if q[1] else kernel_abi.Quant.UINT8), q[0]


def _q8_settings(
    layer: kernel_abi.Conv2d | kernel_abi.Dense,
    scale: float,
    signed: bool,
    arrays: list[np.ndarray],
    out: tuple[float, bool] | None = None,
    residual: tuple[float, bool] | None = None,
) -> list[int]:
    """The int8 kernel's settings array: the float layer's settings, the input's scale and
    sign, how output (and, for convolutions, residual) are stored, keyed by all of it and the
    quantised weights."""
    out_kind, out_scale = _quant(out)
    if isinstance(layer, kernel_abi.Dense):  # dense layers take no residual
        record: kernel_abi.Settings = kernel_abi.DenseQ8(layer, scale, signed, out_kind, out_scale)
    else:
        res_kind, res_scale = _quant(residual)
        record = kernel_abi.Conv2dQ8(layer, scale, signed, out_kind, out_scale, res_kind, res_scale)
    return kernel_abi.encode(record, content=arrays)


def _users(func: Any) -> dict[Any, list[Any]]:
    """Per variable, the variables of the bindings that use it (None: the function's result)."""
    from tvm import relax

    users: dict[Any, list[Any]] = {}
    for b in (b for block in func.body.blocks for b in block.bindings):
        for v in relax.analysis.free_vars(b.value):
            users.setdefault(v, []).append(b.var)
    for v in relax.analysis.free_vars(func.body.body):
        users.setdefault(v, []).append(None)
    return users


def _int8_outputs(
    func: Any,
    layers: list[_Layer],
    qs: list[tuple[float, bool] | None],
    pools: dict[Any, kernel_abi.Pool2d],
) -> tuple[
    list[tuple[float, bool] | None], list[tuple[float, bool] | None], dict[Any, tuple[float, bool]]
]:
    """Per layer: the (scale, signed) its output can be written in, quantised, and the
    (scale, signed) its residual arrives in (None: float); and the max pools that then run
    on quantised data (pool output var -> (scale, signed)). ``pools``: :func:`_pools`.

    An output is written quantised when every use of it is an int8 layer calibrated with
    one scale: as that layer's input, or as the residual of an int8 layer (the ResNet block
    output that feeds the next block's first conv and its residual add). It needs at least
    one reader to give the scale, an activation that commutes with a positive scale (none,
    ReLU, leaky ReLU, clip with rescaled bounds) and an NHWC output. A layer whose only use
    is a max pool (ResNet's stem) is judged by the pool's uses: max commutes with rounding
    and clipping, so the pool can run on the quantised tensor and hand it on."""
    from tvm import relax

    users = _users(func)
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


def _terminal(func: Any, layers: list[_Layer]) -> set[int]:
    """Indices of the layers whose result reaches no other offloaded layer (output heads)."""
    from tvm import relax

    inputs = {
        v for layer in layers for v in (layer.data, layer.residual) if isinstance(v, relax.Var)
    }
    users = _users(func)
    reaches: dict[Any, bool] = {}
    for b in reversed([b for block in func.body.blocks for b in block.bindings]):
        v = b.var
        reaches[v] = v in inputs or any(reaches.get(u, False) for u in users.get(v, []))
    return {i for i, layer in enumerate(layers) if not reaches.get(layer.end.var, False)}


def layer_selectors(func: Any, layers: list[_Layer]) -> dict[str, set[int]]:
    """Named groups of layers that recipes may keep in float."""
    return {
        "input": {i for i, layer in enumerate(layers) if layer.src_nchw},
        "output": _terminal(func, layers),
    }


def layer_summary(
    index: int, layer: _Layer, key: int, weight: np.ndarray, int8: bool
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


def resolve_keep_float(func: Any, layers: list[_Layer], keep_float: list[str | int]) -> set[int]:
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


def offload(
    mod: Any,
    quant: Quantization | None = None,
    keep_float: list[str | int] = (),
    library: str = "dnnl",
) -> tuple[Any, dict[str, Any]]:
    """Replace conv2d / dense layers of ``mod["main"]`` by calls to ``library``'s kernels
    (oneDNN: "dnnl", or "xnnpack").

    ``quant``: calibration results; the layers it covers become int8 calls, except those
    named in ``keep_float`` (layer indices in graph order, or "input" / "output").
    Returns the new module and a summary: layers offloaded per kind (and in int8), ops
    folded into them, and one entry per layer (index, kind, key, weight shape, precision).
    """
    from tvm import relax

    from ..targets import INT8_KERNEL_LIBRARIES

    kernels = KERNELS[library]
    if quant is not None and library not in INT8_KERNEL_LIBRARIES:
        raise ValueError(f"no int8 kernels in {library}")
    layers = _plan(mod["main"], tuple(kernels))
    index = {id(layer): i for i, layer in enumerate(layers)}
    floats: set[int] = set()
    if quant is not None:
        floats = resolve_keep_float(mod["main"], layers, keep_float) | quant.keep_float
    summary: list[dict[str, Any]] = [{} for _ in layers]
    by_end = {layer.end.var: layer for layer in layers}
    skipped = {
        b.var
        for layer in layers
        for b in [layer.head, *layer.absorbed[:-1], *layer.transposes]
        if b is not None
    }
    skipped -= set(by_end)
    stats = Counter(
        {
            "conv2d": 0,
            "conv2d_transpose": 0,
            "dense": 0,
            "fused_ops": 0,
            "int8": 0,
            "int8_outputs": 0,
            "pool2d": 0,
        }
    )
    folded = [_folded(layer) for layer in layers]
    float_settings = [_settings(layer, *folded[i]) for i, layer in enumerate(layers)]
    qs: list[tuple[float, bool] | None] = [  # transposed convolutions stay float
        None
        if quant is None or i in floats or layer.kind == "deconv"
        else quant.inputs.get(float_settings[i][-1])
        for i, layer in enumerate(layers)
    ]
    pools = _pools(mod["main"]) if library == "dnnl" else {}
    out_q, residual_q, pool_q = _int8_outputs(mod["main"], layers, qs, pools)
    stats["int8_outputs"] = sum(q is not None for q in out_q)

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):  # type: ignore[misc]
        def visit_var_binding_(self, binding: Any) -> None:  # noqa: N802 - TVM's visitor name
            if binding.var in skipped:
                return  # folded into a layer emitted at its chain's end
            layer = by_end.get(binding.var)
            pool = pools.get(binding.var)
            if pool is not None:
                x = self.visit_expr(binding.value.args[0])
                q = pool_q.get(binding.var)  # runs on the quantised output of the layer before
                out_ty = (
                    binding.var.ty
                    if q is None
                    else relax.TensorType(list(_shape(binding.var)), "int8" if q[1] else "uint8")
                )
                settings = relax.ShapeExpr(kernel_abi.encode(pool))
                call = relax.call_dps_packed(POOL, relax.Tuple([x, settings]), out_ty=out_ty)
                _emit_as(self, binding.var, call)
                stats["pool2d"] += 1
                return
            if layer is None:
                super().visit_var_binding_(binding)
                return
            i = index[id(layer)]
            weight, bias = folded[i]
            settings = float_settings[i]
            float_key, q, out = settings[-1], qs[i], out_q[i]
            out_ty = binding.var.ty
            if q is None:
                weights = [relax.const(weight), relax.const(bias)]
                kernel = kernels[layer.kind]
            else:
                wq, wscale = quantize_weights(weight)
                settings = _q8_settings(
                    _layer_settings(layer), q[0], q[1], [wq, wscale, bias], out, residual_q[i]
                )
                weights = [relax.const(wq), relax.const(wscale), relax.const(bias)]
                kernel = CONV_Q8 if layer.kind == "conv" else DENSE_Q8
                stats["int8"] += 1
                if out is not None:  # handed to the next int8 layers already quantised
                    out_ty = relax.TensorType(
                        list(_shape(binding.var)), "int8" if out[1] else "uint8"
                    )
            summary[i] = layer_summary(i, layer, float_key, weight, q is not None)
            args = [self.visit_expr(layer.data), *weights]
            if layer.residual is not None:
                args.append(self.visit_expr(layer.residual))
            args.append(relax.ShapeExpr(settings))
            call = relax.call_dps_packed(kernel, relax.Tuple(args), out_ty=out_ty)
            _emit_as(self, binding.var, call)
            stats[
                {"conv": "conv2d", "deconv": "conv2d_transpose", "dense": "dense"}[layer.kind]
            ] += 1
            stats["fused_ops"] += len(layer.absorbed)

    main = Rewrite(mod).visit_expr(mod["main"])
    mod["main"] = main
    mod = relax.transform.DeadCodeElimination()(mod)
    return mod, {**stats, "layers": summary}
