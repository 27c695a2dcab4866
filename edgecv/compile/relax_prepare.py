"""The Relax passes that run before the layer rewrites (offload.py, int8_lowering.py), on
an imported ONNX graph: inference decomposition (batch norm → affine), constant folding of
the weight arithmetic in NumPy (then TVM's FoldConstant for the rest), ONNX ``Clip`` with
constant bounds back to maximum/minimum and leaky ReLU as a one-slope ``prelu``, and
activations in NHWC (``ConvertLayout``), so that offloaded layers hand each other NHWC
tensors with no transposes between them. The graph's meaning is unchanged; only its form.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .kernel_calls import KERNELS
from .layer_plan import deconv_ok
from .relax_expr import const_value, emit_as, op_name, static_shape


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


def _deconvs_offloadable(func: Any) -> bool:
    calls = [
        b.value
        for block in func.body.blocks
        for b in block.bindings
        if op_name(b.value) == "relax.nn.conv2d_transpose"
    ]
    return all(deconv_ok(v) for v in calls)


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
    name = op_name(call)
    known = (*_NUMPY_BINARY, *_NUMPY_UNARY, *_NUMPY_RESHAPE, "relax.permute_dims")
    if name not in known:
        return None  # before any argument is copied out (conv weights are large)
    args = [const_value(a) for a in call.args]
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
        shape = static_shape(call)
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
                    emit_as(self, binding.var, value)

        out = mod.clone() if hasattr(mod, "clone") else mod
        for gv, func in list(mod.functions.items()):
            if isinstance(func, relax.Function):
                out[gv] = Fold(mod).visit_expr(func)
        return out

    return fold


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
                shape = static_shape(call.args[0])
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
