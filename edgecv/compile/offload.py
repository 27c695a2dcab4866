"""Kernel-library offload: convolutions and dense layers leave the TVM graph for oneDNN
(x86) or XNNPACK (ARM).

Untuned TVM code on a CPU is unscheduled and single-threaded (ResNet-18: 1.5 s against
ONNX Runtime's 8 ms). oneDNN has tuned x86 kernels, XNNPACK tuned ARM (NEON) ones, for
exactly the layers that dominate vision models, so they are replaced by calls to functions
that edgecv's C++ runtime registers (``runtime_cpp/src/kernels_ffi.cc``; bodies in ``dnnl_*.cc``,
``kernels_xnnpack.cc``, ``xnnpack_int8.cc``); everything else stays TVM-generated. Both
libraries take the same arguments and settings, int8 included; only oneDNN's pools.

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
(int8 if the input can be negative, else uint8); oneDNN, or XNNPACK's qc8 operators,
compute in int8 with int32 accumulation. An output whose every use is an int8 layer of one input scale is written in
uint8/int8 with that scale, a residual add included (the next layer then takes it quantised
too); other outputs are float. Layers the recipe names stay float.

Folding is done in float64 and rounded once, so the offloaded graph agrees with ONNX
Runtime to float32 rounding (checked at compile time like every artifact).

The rewrite is this module; its parts are its neighbours: ``relax_prepare`` (step 1),
``layer_plan`` (which bindings make a layer, its folded weights, the layer groups recipes
name), ``kernel_calls`` (the kernel function names and each call's settings record),
``int8_plan`` (weights quantised to int8, which outputs stay quantised) and ``relax_expr``
(reading Relax expressions). Their public names that callers used from here are imported
here too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import kernel_abi
from .int8_plan import Quantization, int8_outputs, quantize_weights
from .kernel_abi import Act
from .kernel_calls import (
    CONV,
    CONV_Q8,
    DECONV,
    DENSE,
    DENSE_Q8,
    KERNELS,
    KERNELS_Q8,
    POOL,
    float_settings,
    layer_record,
    offloadable_pools,
    q8_settings,
    quantised_dtype,
)
from .layer_plan import (
    folded_weights,
    layer_selectors,
    layer_summary,
    plan_layers,
    resolve_keep_float,
)
from .relax_expr import emit_as, static_shape
from .relax_prepare import prepare

SETTINGS_VERSION = kernel_abi.VERSION
ACT_NONE, ACT_RELU, ACT_CLIP = Act.NONE, Act.RELU, Act.CLIP

__all__ = [
    "ACT_CLIP",
    "ACT_NONE",
    "ACT_RELU",
    "CONV",
    "CONV_Q8",
    "DECONV",
    "DENSE",
    "DENSE_Q8",
    "KERNELS",
    "KERNELS_Q8",
    "POOL",
    "SETTINGS_VERSION",
    "Quantization",
    "layer_selectors",
    "layer_summary",
    "offload",
    "prepare",
    "quantize_weights",
    "resolve_keep_float",
]


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

    kernels = KERNELS[library]
    if quant is not None and library not in KERNELS_Q8:
        raise ValueError(f"no int8 kernels in {library}")
    layers = plan_layers(mod["main"], tuple(kernels))
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
    folded = [folded_weights(layer) for layer in layers]
    layer_settings = [float_settings(layer, *folded[i]) for i, layer in enumerate(layers)]
    qs: list[tuple[float, bool] | None] = [  # transposed convolutions stay float
        None
        if quant is None or i in floats or layer.kind == "deconv"
        else quant.inputs.get(layer_settings[i][-1])
        for i, layer in enumerate(layers)
    ]
    pools = offloadable_pools(mod["main"])
    # XNNPACK's wrapper has no pooling: max pools stay TVM's, which then take and give the
    # quantised tensor as they are (TVM pads a max pool with the type's lowest value)
    max_pools = {v: s for v, s in pools.items() if s.kind == kernel_abi.Pool.MAX}
    out_q, residual_q, pool_q = int8_outputs(
        mod["main"], layers, qs, pools if library == "dnnl" else max_pools
    )
    if library != "dnnl":
        pools = {}
    stats["int8_outputs"] = sum(q is not None for q in out_q)
    # XNNPACK's int8 operators take int8 only: its uint8 tensors are kept as int8, v - 128
    # (TVM's max pools stay right on them: the shift preserves order, and the type's lowest
    # value, their padding, is uint8's 0 shifted)
    as_int8 = library == "xnnpack"
    quantised_vars = {
        layer.end.var for layer, q in zip(layers, out_q, strict=True) if q is not None
    } | set(pool_q)

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
                    else relax.TensorType(
                        list(static_shape(binding.var)), quantised_dtype(q, False)
                    )
                )
                settings = relax.ShapeExpr(kernel_abi.encode(pool))
                call = relax.call_dps_packed(POOL, relax.Tuple([x, settings]), out_ty=out_ty)
                emit_as(self, binding.var, call)
                stats["pool2d"] += 1
                return
            if layer is None:
                super().visit_var_binding_(binding)
                return
            i = index[id(layer)]
            weight, bias = folded[i]
            settings = layer_settings[i]
            float_key, q, out = settings[-1], qs[i], out_q[i]
            out_ty = binding.var.ty
            if q is None:
                weights = [relax.const(weight), relax.const(bias)]
                kernel = kernels[layer.kind]
            else:
                wq, wscale = quantize_weights(weight)
                settings = q8_settings(
                    layer_record(layer),
                    q[0],
                    q[1],
                    [wq, wscale, bias],
                    out,
                    residual_q[i],
                    input_quantised=layer.data in quantised_vars,
                    as_int8=as_int8,
                )
                weights = [relax.const(wq), relax.const(wscale), relax.const(bias)]
                kernel = KERNELS_Q8[library][layer.kind]
                stats["int8"] += 1
                if out is not None:  # handed to the next int8 layers already quantised
                    out_ty = relax.TensorType(
                        list(static_shape(binding.var)), quantised_dtype(out, as_int8)
                    )
            summary[i] = layer_summary(i, layer, float_key, weight, q is not None)
            args = [self.visit_expr(layer.data), *weights]
            if layer.residual is not None:
                args.append(self.visit_expr(layer.residual))
            args.append(relax.ShapeExpr(settings))
            call = relax.call_dps_packed(kernel, relax.Tuple(args), out_ty=out_ty)
            emit_as(self, binding.var, call)
            stats[
                {"conv": "conv2d", "deconv": "conv2d_transpose", "dense": "dense"}[layer.kind]
            ] += 1
            stats["fused_ops"] += len(layer.absorbed)

    main = Rewrite(mod).visit_expr(mod["main"])
    mod["main"] = main
    mod = relax.transform.DeadCodeElimination()(mod)
    return mod, {**stats, "layers": summary}
