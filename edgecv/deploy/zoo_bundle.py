"""A zoo model → its exported bundle (ONNX + metadata): the one place that turns a Gluon
model and its :class:`~edgecv.registry.ModelSpec` into what the compile stage reads."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..bundle import Bundle, write_metadata
from ..errors import InvalidInputError
from ..ops import preprocess_ops
from ..registry import DataConfig, ModelSpec

MIN_INPUT = 32


def size_multiple(spec: ModelSpec) -> int:
    """The input sides a model accepts are multiples of this (strided heads, pooling)."""
    if spec.family in ("yolo3", "center_net", "residual_attention") or spec.task == "pose":
        return 32
    if spec.family == "cifar_residual_attention":  # its masks pool twice, then upsample x2
        return 4
    if spec.task == "segmentation":
        return 8
    return 1


def resolve_data(spec: ModelSpec, input_size: int | None) -> DataConfig:
    """The model's data config at ``input_size`` (None: its own), or a clear error."""
    data = spec.data if input_size is None else spec.data.scaled(input_size)
    if min(data.input_size) < MIN_INPUT:
        raise InvalidInputError(f"input size {data.input_size} is too small (minimum {MIN_INPUT})")
    m = size_multiple(spec)
    if any(s % m for s in data.input_size):
        raise InvalidInputError(
            f"{spec.name} needs input sides that are multiples of {m}, "
            f"got {data.input_size[0]}x{data.input_size[1]}"
        )
    return data


def weights_label(model: str, pretrained: str | None) -> str:
    """What the manifest says of the weights: a file name, edgecv's shipped ones, or random."""
    from ..zoo import shipped_weights

    if pretrained:
        return Path(pretrained).name
    shipped = shipped_weights(model)
    return f"edgecv:{shipped.name}" if shipped else "random-init"


def deploy_head(net: Any, input_shape: tuple[int, ...], top_k: int = 5) -> dict[str, Any]:
    """Switch ``net`` to its deployable graph for ``input_shape`` and describe it: output
    names, the runtime's post-processing ops, data files (e.g. SSD priors). Detectors end
    at their raw heads (decode and NMS run in C++), segmentation at class scores, pose at
    heatmaps."""
    if net.edgecv_meta.spec.task == "classification":
        return {
            "outputs": ["logits"],
            "postprocess": [{"op": "softmax"}, {"op": "topk", "k": top_k}],
        }
    net.prepare_deploy(input_shape)
    return net.deploy_head()


def export_model(
    model: str,
    out: str | os.PathLike[str],
    input_size: int | None = None,
    pretrained: str | None = None,
    seed: int = 0,
    top_k: int = 5,
    step: Any = lambda _: None,
) -> tuple[Path, Bundle]:
    """Build the zoo ``model``, export it to ONNX at ``out`` (checked against MXNet) with its
    bundle metadata; returns the path and the metadata."""
    import mxnet
    import onnx

    from .. import zoo
    from ..export import INPUT_NAME, export_onnx

    spec = zoo.MODELS.get(model)
    data = resolve_data(spec, input_size)
    step(f"building {model} (MXNet Gluon)")
    net = zoo.get_model(model, pretrained=pretrained)
    input_shape = (1, 3, *data.input_size)
    head = deploy_head(net, input_shape, top_k)
    step(f"exporting ONNX {input_shape}")
    out = Path(out)
    exported = export_onnx(net, out, input_shape, seed=seed, output_names=head["outputs"])
    bundle = Bundle(
        model={
            "name": model,
            "task": spec.task,
            "family": spec.family,
            "weights": weights_label(model, pretrained),
        },
        input={
            "name": INPUT_NAME,
            "shape": list(input_shape),
            "layout": "NCHW",
            "size_multiple": size_multiple(spec),
            "min_size": MIN_INPUT,
        },
        preprocess=preprocess_ops(data),
        postprocess=head["postprocess"],
        outputs=list(exported.output_names),
        classes=list(net.edgecv_meta.classes),
        data=asdict(data),
        files=dict(head.get("files", {})),
        producer={"mxnet": mxnet.__version__},
        export_report={"onnxruntime_vs_mxnet_max_abs": exported.max_abs_error},
    )
    onnx_model = write_metadata(onnx.load(str(out)), bundle)
    partial = out.with_name(out.name + ".partial")
    onnx.save(onnx_model, str(partial))
    partial.replace(out)
    return out, bundle
