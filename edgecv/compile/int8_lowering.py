"""int8 in TVM-generated code, for targets without a kernel library (ARM): the calibrated
conv2d / dense layers become integer Relax operators that any TVM target compiles.

The layers, their folded weights and their keys are those of the oneDNN rewrite
(offload.py: the same planner, layer_plan.py, and int8 plan, int8_plan.py), so one
calibration table serves both. Each calibrated layer becomes

    q   = clip(round(x / s_in))  as int8 (input can be negative) or uint8 (it cannot)
    acc = conv2d / matmul(q, w_q, out_dtype=int32)    w_q: int8, symmetric per out channel
    y   = float(acc) * (s_in * s_w[c]) + bias[c]      then its activation / residual add

(a residual that the oneDNN path adds in uint8/int8 is rounded to that grid here too, so
both paths compute the same), so the multiply-accumulate runs on 8-bit integers into
int32, exactly (LLVM lowers the widening products to the target's integer instructions:
``sdot``/``udot`` where the CPU has the dot-product extension, widening multiply-add
otherwise). Layers not in the table, or kept in float, stay the graph's own float operators.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .int8_plan import Quantization, int8_outputs, quantize_weights
from .kernel_abi import Act
from .kernel_calls import float_settings, offloadable_pools
from .layer_plan import folded_weights, layer_summary, plan_layers, resolve_keep_float
from .relax_expr import emit_as


def _float_chain(bb: Any, y: Any, layer: Any, residual: Any) -> Any:
    """The layer's activation and residual add, in the graph's order, on float ``y``."""
    from tvm import relax

    op = relax.op

    def activate(v: Any) -> Any:
        if layer.act == Act.RELU:
            if layer.alpha == 0.0:
                return bb.emit(op.nn.relu(v))
            return bb.emit(op.nn.leakyrelu(v, layer.alpha))
        if layer.act == Act.CLIP:
            return bb.emit(op.clip(v, layer.alpha, layer.beta))
        return v

    if residual is not None and not layer.residual_after_act:
        y = bb.emit(op.add(y, residual))
    y = activate(y)
    if residual is not None and layer.residual_after_act:
        y = bb.emit(op.add(y, residual))
    return y


def _quantise(x: Any, scale: float, signed: bool) -> Any:
    """clip(round(x / scale)) as int8 (signed) or uint8."""
    from tvm import relax

    op = relax.op
    lo, hi, dtype = (-127.0, 127.0, "int8") if signed else (0.0, 255.0, "uint8")
    return op.astype(
        op.clip(op.round(op.multiply(x, relax.const(1.0 / scale, "float32"))), lo, hi), dtype
    )


def _fake_quantise(x: Any, scale: float, signed: bool) -> Any:
    """``x`` rounded to the int8/uint8 grid of ``scale``, in float."""
    from tvm import relax

    op = relax.op
    return op.multiply(
        op.astype(_quantise(x, scale, signed), "float32"), relax.const(scale, "float32")
    )


def integerize(
    mod: Any, quant: Quantization, keep_float: list[str | int] = ()
) -> tuple[Any, dict[str, Any]]:
    """Rewrite the calibrated layers of ``relax_prepare.prepare(mod)["main"]`` to integer
    ops. Returns the module and a summary like :func:`edgecv.compile.offload.offload`'s."""
    from tvm import relax

    op = relax.op
    func = mod["main"]
    layers = plan_layers(func)
    floats = resolve_keep_float(func, layers, keep_float) | quant.keep_float
    folded = [folded_weights(layer) for layer in layers]
    keys = [float_settings(layer, *folded[i])[-1] for i, layer in enumerate(layers)]
    qs = [
        None if i in floats or layer.kind == "deconv" else quant.inputs.get(keys[i])
        for i, layer in enumerate(layers)
    ]
    # residuals that the oneDNN path adds in uint8/int8: rounded to that grid here too
    _, residual_q, _ = int8_outputs(func, layers, qs, offloadable_pools(func))
    chosen = {id(layer): i for i, layer in enumerate(layers) if qs[i] is not None}
    by_end = {layer.end.var: layer for layer in layers if id(layer) in chosen}
    skipped = {
        b.var
        for layer in layers
        if id(layer) in chosen
        for b in [layer.head, *layer.absorbed[:-1], *layer.transposes]
        if b is not None
    } - set(by_end)
    summary = [
        layer_summary(i, layer, keys[i], folded[i][0], qs[i] is not None)
        for i, layer in enumerate(layers)
    ]

    @relax.expr_functor.mutator
    class Rewrite(relax.PyExprMutator):  # type: ignore[misc]
        def visit_var_binding_(self, binding: Any) -> None:  # noqa: N802 - TVM's visitor name
            if binding.var in skipped:
                return
            layer = by_end.get(binding.var)
            if layer is None:
                super().visit_var_binding_(binding)
                return
            i = chosen[id(layer)]
            scale, signed = qs[i]
            weight, bias = folded[i]
            wq, wscale = quantize_weights(weight)
            bb = self.builder_
            x = self.visit_expr(layer.data)
            if layer.src_nchw:
                x = bb.emit(op.permute_dims(x, [0, 2, 3, 1]))
            q = bb.emit(_quantise(x, scale, signed))
            if layer.kind == "conv":
                a = layer.head.value.attrs
                g, og, ig, kh, kw = wq.shape
                w_ohwi = np.ascontiguousarray(wq.reshape(g * og, ig, kh, kw).transpose(0, 2, 3, 1))
                acc = bb.emit(
                    op.nn.conv2d(
                        q,
                        relax.const(w_ohwi),
                        strides=[int(v) for v in a.strides],
                        padding=[int(v) for v in a.padding],
                        dilation=[int(v) for v in a.dilation],
                        groups=int(a.groups),
                        data_layout="NHWC",
                        kernel_layout="OHWI",
                        out_dtype="int32",
                    )
                )
            else:  # dense: w_q is N×K
                acc = bb.emit(
                    op.matmul(q, relax.const(np.ascontiguousarray(wq.T)), out_dtype="int32")
                )
            per_channel = (np.float64(scale) * wscale.astype(np.float64)).astype(np.float32)
            y = bb.emit(
                op.add(
                    op.multiply(op.astype(acc, "float32"), relax.const(per_channel)),
                    relax.const(bias),
                )
            )
            residual = None if layer.residual is None else self.visit_expr(layer.residual)
            if residual_q[i] is not None:
                residual = bb.emit(_fake_quantise(residual, *residual_q[i]))
            y = _float_chain(bb, y, layer, residual)
            if layer.dst_nchw:
                y = op.permute_dims(y, [0, 3, 1, 2])
            emit_as(self, binding.var, y)

    mod["main"] = Rewrite(mod).visit_expr(func)
    mod = relax.transform.DeadCodeElimination()(mod)
    kinds = [layers[i].kind for i in chosen.values()]
    stats = {
        "engine": "tvm",
        "conv2d": kinds.count("conv"),
        "dense": kinds.count("dense"),
        "int8": len(chosen),
        "layers": summary,
    }
    return mod, stats


__all__ = ["integerize"]
