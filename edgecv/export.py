"""MXNet Gluon → ONNX, cleaned for downstream use and checked against MXNet.

The ONNX file is the contract between the MXNet side and everything downstream: the deploy
driver (``edgecv.deploy.zoo_bundle``) adds the bundle metadata (:mod:`edgecv.bundle`) to
what this writes, and compile, calibration and runtime read that and never import MXNet.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import drop_initializer_inputs
from .errors import ParityError
from .parity import check_agreement

ONNX_OPSET = 13  # mx2onnx emits opset-13 node forms whatever it writes in the header
INPUT_NAME = "data"


@dataclass
class ExportResult:
    path: Path
    input_shape: tuple[int, ...]
    output_names: list[str]
    max_abs_error: float  # ONNX Runtime vs MXNet on a random input
    output_scale: float


def _honour_fixed_gamma(net: Any) -> None:
    """mx2onnx emits the stored gamma even where BatchNorm fixes it to 1: make them equal."""
    import mxnet as mx
    from mxnet.gluon import nn

    def visit(block: Any) -> None:
        if isinstance(block, nn.BatchNorm) and block._kwargs.get("fix_gamma"):
            block.gamma.set_data(mx.nd.ones(block.gamma.shape))
        for child in block._children.values():
            visit(child)

    visit(net)


def clean_onnx(model: Any) -> Any:
    """Drop initializers from the graph inputs, and infer shapes; returns the model."""
    import onnx

    model = onnx.shape_inference.infer_shapes(drop_initializer_inputs(model), strict_mode=True)
    onnx.checker.check_model(model)
    return model


def freeze_shapes(model: Any, input_shape: tuple[int, ...]) -> Any:
    """Make every ``Resize`` take constant output ``sizes`` (and no ``scales``) and every
    ``Reshape`` a constant target shape, dropping the shape arithmetic mx2onnx builds them
    from (``BilinearResize2D``, ``PixelShuffle2D``, reshape codes): TVM's importer takes
    neither that arithmetic nor an empty ``scales`` next to ``sizes``. The shapes come from
    running the graph once in ONNX Runtime at the static input shape; the caller's
    ONNX Runtime vs MXNet check then covers the rewrite."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    constant = {t.name for t in model.graph.initializer}
    nodes = [
        n
        for n in model.graph.node
        if n.op_type == "Resize" or (n.op_type == "Reshape" and n.input[1] not in constant)
    ]
    if not nodes:
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for n in nodes:
        if n.output[0] not in known:
            probe.graph.output.append(helper.make_empty_tensor_value_info(n.output[0]))
            known.add(n.output[0])
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(None, {INPUT_NAME: np.zeros(input_shape, np.float32)})
    shapes = {n: v.shape for n, v in zip(names, values, strict=True)}
    for n in nodes:
        frozen = numpy_helper.from_array(
            np.array(shapes[n.output[0]], np.int64), name=n.output[0] + "_frozen_shape"
        )
        model.graph.initializer.append(frozen)
        if n.op_type == "Resize":
            n.input[:] = [n.input[0], "", "", frozen.name]
        else:
            n.input[1] = frozen.name
    # drop what no longer feeds an output
    needed = {o.name for o in model.graph.output}
    kept = []
    for node in reversed(list(model.graph.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    used = {i for node in model.graph.node for i in node.input}
    inits = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    return model


def _rename_outputs(model: Any, names: list[str]) -> None:
    outputs = model.graph.output
    if len(names) != len(outputs):
        raise ParityError(f"the graph has {len(outputs)} outputs, {len(names)} names given")
    renames = {o.name: n for o, n in zip(outputs, names, strict=True)}
    for node in model.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for o in outputs:
        o.name = renames[o.name]


def export_onnx(
    net: Any,
    path: str | os.PathLike[str],
    input_shape: tuple[int, ...],
    seed: int = 0,
    rtol: float = 1e-4,
    output_names: list[str] | None = None,
) -> ExportResult:
    """Hybridize ``net``, export it to ONNX at ``path`` and check ORT against MXNet.

    ``output_names`` renames the graph outputs (in order). Raises :class:`ParityError` when ONNX Runtime's output differs from MXNet's by
    more than ``rtol`` of the output scale. ``path`` is written only on success.
    """
    import mxnet as mx
    import onnx
    import onnxruntime as ort

    path = Path(path)
    x = np.random.RandomState(seed).uniform(-2, 2, input_shape).astype(np.float32)
    _honour_fixed_gamma(net)
    net.hybridize(static_alloc=True, static_shape=True)
    ref_out = net(mx.nd.array(x))
    refs = [o.asnumpy() for o in (ref_out if isinstance(ref_out, (list, tuple)) else [ref_out])]
    with tempfile.TemporaryDirectory(prefix="edgecv-export-") as tmp:
        prefix = os.path.join(tmp, "net")
        net.export(prefix)
        sym = mx.sym.load(prefix + "-symbol.json")
        params = mx.nd.load(prefix + "-0000.params")
        params = {k.split(":", 1)[1]: v for k, v in params.items()}
        sym_in = [n for n in sym.list_inputs() if n not in params]
        if len(sym_in) != 1:
            raise ParityError(f"expected one data input, the graph has {sym_in}")
        raw = os.path.join(tmp, "raw.onnx")
        mx.onnx.export_model(sym, params, [input_shape], [np.float32], raw)
        model = onnx.load(raw)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = ONNX_OPSET
    for node_input in (n for n in model.graph.input if n.name == sym_in[0]):
        node_input.name = INPUT_NAME
    for node in model.graph.node:
        node.input[:] = [INPUT_NAME if i == sym_in[0] else i for i in node.input]
    if output_names is not None:
        _rename_outputs(model, output_names)
    # mx2onnx lists every weight as a graph input too: drop them before any ONNX Runtime
    # session sees the graph (freeze_shapes runs one), which warns once per weight
    model = clean_onnx(freeze_shapes(drop_initializer_inputs(model), tuple(input_shape)))
    data = model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {INPUT_NAME: x})
    err, scale = check_agreement(outs, refs, rtol, "ONNX Runtime differs from MXNet after export")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(path.name + ".partial")
    tmp_path.write_bytes(data)
    tmp_path.replace(path)
    return ExportResult(
        path=path,
        input_shape=tuple(input_shape),
        output_names=[o.name for o in model.graph.output],
        max_abs_error=err,
        output_scale=scale,
    )
