"""Compile a zoo model into an artifact directory: MXNet → ONNX → TVM Relax → shared library.

This package never imports MXNet itself; the export step it calls does.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artifact import LIBRARY, ONNX, SCHEMA, SCHEMA_VERSION, WEIGHTS, ArtifactWriter
from ..errors import EdgecvError, InvalidInputError
from ..registry import DataConfig
from ..targets import KERNEL_PACKAGES, ResolvedTarget, check_toolchain, resolve_target

Step = Callable[[str], None]
# fp16 artifacts checked against ONNX Runtime's float32 (where they can run): fp16 carries
# 11 significant bits, and accumulating in fp16 loses more over long sums
FP16_RTOL = 2e-2


@dataclass
class CompileOptions:
    model: str
    target: str = "x86_64"
    arch: str | None = None  # GPU targets: the GPU (`edgecv targets` lists them)
    precision: str = "fp32"
    input_size: int | None = None  # square input side; None: the model's own size
    pretrained: str | None = None  # local .params file
    out_dir: str | None = None
    top_k: int = 5
    parity_rtol: float = 1e-4
    seed: int = 0
    # "auto": the target's kernel library (oneDNN on x86) when usable here, else TVM alone;
    # "tvm": TVM-generated code only; or a library name ("dnnl")
    kernels: str = "auto"
    # int8 (see int8.py): calibration images or a saved table, evaluation data for the
    # accuracy gate, and overrides of the model's calibration recipe
    calib_data: str | None = None
    calibration_table: str | None = None
    calibrator: str | None = None
    calib_images: int | None = None
    keep_float: list[str | int] | None = None
    eval_data: str | None = None
    max_drop: float = 1.0  # points of the task metric int8 may lose against float
    tuning_db: str | None = None  # a MetaSchedule database made by `edgecv tune`


def default_out_dir(model: str, target: str, precision: str) -> Path:
    return Path("artifacts") / f"{model}-{target}-{precision}"


def preprocess_ops(data: DataConfig) -> list[dict[str, Any]]:
    """The ordered preprocessing the C++ runtime applies, as data."""
    size = list(data.input_size)
    if data.resize == "short_crop":
        geometry = [
            {"op": "resize_short", "size": data.resize_short, "interpolation": data.interpolation},
            {"op": "center_crop", "size": size},
        ]
    elif data.resize == "letterbox":
        # pad with the mean color, which normalises to zero
        pad = [int(round(m)) for m in data.mean]
        geometry = [
            {"op": "letterbox", "size": size, "interpolation": data.interpolation, "pad_value": pad}
        ]
    elif data.resize == "stretch":
        geometry = [{"op": "resize", "size": size, "interpolation": data.interpolation}]
    elif data.resize == "person_crop":
        # a person box, enlarged by `scale` to the input's aspect ratio (the whole image
        # when no box is given)
        geometry = [
            {"op": "person_crop", "size": size, "interpolation": data.interpolation, "scale": 1.25}
        ]
    else:
        raise InvalidInputError(f"unknown resize rule {data.resize!r}")
    return [
        *geometry,
        {
            "op": "normalize",
            "mean": list(data.mean),
            "std": list(data.std),
            "color": data.color,
            "layout": "NCHW",
        },
    ]


def weights_label(model: str, pretrained: str | None) -> str:
    """What the manifest says of the weights: a file name, edgecv's shipped ones, or random."""
    from ..zoo import shipped_weights

    if pretrained:
        return Path(pretrained).name
    shipped = shipped_weights(model)
    return f"edgecv:{shipped.name}" if shipped else "random-init"


def _toolchain() -> dict[str, str]:
    import mxnet
    import onnx
    import onnxruntime

    from . import tvm_api

    return {
        "edgecv": __version__,
        **tvm_api.versions(),
        "mxnet": mxnet.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


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


def compile_model(options: CompileOptions, step: Step = lambda _: None) -> Path:
    """Build the artifact described by ``options``; returns its directory.

    Steps: build the Gluon model, export ONNX (checked against MXNet), import into TVM,
    compile for the target, check TVM against ONNX Runtime, write the artifact.
    Raises an :class:`~edgecv.errors.EdgecvError` subclass on any failure, leaving
    no partial artifact behind.
    """
    if options.precision == "int8":
        from .int8 import compile_int8

        return compile_int8(options, step)
    import onnxruntime as ort

    from .. import zoo
    from ..export import check_agreement, export_onnx
    from .worker import build_into

    target: ResolvedTarget = resolve_target(options.target, options.arch, options.precision)
    check_toolchain(target)
    spec = zoo.MODELS.get(options.model)
    data = spec.data if options.input_size is None else spec.data.scaled(options.input_size)
    if min(data.input_size) < 32:
        raise InvalidInputError(f"input size {data.input_size} is too small (minimum 32)")
    if spec.family == "yolo3" and any(s % 32 for s in data.input_size):
        raise InvalidInputError(
            f"{spec.name} needs input sides that are multiples of 32, got {data.input_size[0]}x{data.input_size[1]}"
        )
    if spec.task == "pose" and any(s % 32 for s in data.input_size):
        raise InvalidInputError(
            f"{spec.name} needs input sides that are multiples of 32, got {data.input_size[0]}x{data.input_size[1]}"
        )
    if spec.task == "segmentation" and any(s % 8 for s in data.input_size):
        raise InvalidInputError(
            f"{spec.name} needs input sides that are multiples of 8, got {data.input_size[0]}x{data.input_size[1]}"
        )
    out_dir = Path(
        options.out_dir or default_out_dir(options.model, target.label, options.precision)
    )
    tuning: dict[str, Any] = {}
    if options.tuning_db:
        from .tune import check_database, database_records

        tuning = {
            "database": str(check_database(options.tuning_db)),
            "records": database_records(options.tuning_db),
        }
    timings: dict[str, float] = {}

    with ArtifactWriter(out_dir) as writer:
        t0 = time.perf_counter()
        step(f"building {options.model} (MXNet Gluon)")
        net = zoo.get_model(options.model, pretrained=options.pretrained)
        input_shape = (1, 3, *data.input_size)
        head = deploy_head(net, input_shape, options.top_k)
        output_names, postprocess = head["outputs"], head["postprocess"]
        for file_name, array in head.get("files", {}).items():  # e.g. SSD priors
            np.ascontiguousarray(array, dtype="<f4").tofile(writer.path(file_name))
        step(f"exporting ONNX {input_shape}")
        exported = export_onnx(
            net, writer.path(ONNX), input_shape, seed=options.seed, output_names=output_names
        )
        timings["export_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        step(f"compiling with TVM for {target.label} ({target.tvm})")
        kernels = _choose_kernels(options.kernels, target)
        if not kernels and options.kernels == "auto" and target.target.kernels:
            library = target.target.kernels[0]
            step(
                f"note: the runtime here lacks {library} kernels "
                f"({KERNEL_PACKAGES[library]}); compiling with TVM alone, which is far slower"
            )
        if kernels:
            step(f"convolutions and dense layers go to {', '.join(kernels)}")
        fp16 = options.precision == "fp16"
        if fp16 and kernels:
            if options.kernels != "auto":
                raise InvalidInputError(
                    f"fp16 artifacts are TVM-generated code; --kernels {options.kernels} is fp32/int8 only"
                )
            kernels = []
        if tuning:
            step(f"applying the tuning database {tuning['database']} ({tuning['records']} records)")
        param_entries, offloaded = build_into(
            writer, target, kernels, fp16=fp16, tuning_db=tuning.get("database")
        )
        timings["compile_s"] = time.perf_counter() - t0
        device_code = _check_device_code(writer.path(LIBRARY), target)

        x = np.random.RandomState(options.seed + 1).uniform(-2, 2, input_shape).astype(np.float32)
        ref = ort.InferenceSession(str(writer.path(ONNX)), providers=["CPUExecutionProvider"])
        expected = ref.run(None, {"data": x})
        err: float | None = None
        scale: float | None = None
        if target.is_native:
            step("checking TVM against ONNX Runtime")
            got = run_network(writer.path(LIBRARY), writer.path(WEIGHTS), param_entries, x)
            rtol = max(options.parity_rtol, FP16_RTOL) if fp16 else options.parity_rtol
            err, scale = check_agreement(
                got, expected, rtol, "TVM output differs from ONNX Runtime"
            )
        else:
            step(f"not running the {target.label} library here: check it on the device")

        meta = net.edgecv_meta
        doc = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "model": {
                "name": options.model,
                "task": spec.task,
                "family": spec.family,
                "weights": weights_label(options.model, options.pretrained),
            },
            "target": target.manifest(),
            "precision": options.precision,
            "toolchain": _toolchain(),
            "files": {"library": LIBRARY, "weights": WEIGHTS, "onnx": ONNX},
            "entry": "main",
            "inputs": [
                {"name": "data", "shape": list(input_shape), "dtype": "float32", "layout": "NCHW"}
            ],
            "outputs": [
                {"name": n, "shape": list(e.shape), "dtype": str(e.dtype)}
                for n, e in zip(exported.output_names, expected, strict=True)
            ],
            "params": param_entries,
            "kernels": kernels,
            "preprocess": preprocess_ops(data),
            "postprocess": postprocess,
            "classes": list(meta.classes),
            "report": {
                "parity": {
                    "onnxruntime_vs_mxnet_max_abs": exported.max_abs_error,
                    "tvm_vs_onnxruntime_max_abs": err,
                    "output_scale": scale,
                    **({} if target.is_native else {"tvm_not_run": f"built for {target.label}"}),
                },
                **({"device_code": device_code} if device_code else {}),
                **({"offloaded": offloaded} if kernels else {}),
                **({"tuning": tuning} if tuning else {}),
                "timings": {k: round(v, 3) for k, v in timings.items()},
                "built_on": f"{platform.system()} {platform.machine()}",
            },
        }
        return writer.commit(doc)


def run_network(
    library: Path, weights: Path, params: list[dict[str, Any]], x: np.ndarray
) -> list[np.ndarray]:
    """The compiled network alone (no manifest needed), run by the C++ engine that runs
    artifacts; ``params``: the weights file's entries as the manifest lists them."""
    from .. import _runtime

    entries = [(e["name"], e["shape"], e["dtype"], e["offset"], e["nbytes"]) for e in params]
    return _runtime.run_library(str(library), str(weights), entries, x)


def local_kernel_libraries() -> list[str]:
    """Kernel libraries the edgecv runtime installed here was built with."""
    try:
        from .. import _runtime
    except ImportError:
        return []
    return list(_runtime.kernel_libraries())


def _choose_kernels(requested: str, target: ResolvedTarget) -> list[str]:
    """The kernel libraries the artifact will call (none: TVM-generated code only)."""
    offered = target.target.kernels
    if requested == "tvm" or (requested == "auto" and not offered):
        return []
    library = offered[0] if requested == "auto" else requested
    if library not in offered:
        raise InvalidInputError(
            f"target {target.label!r} has no {requested!r} kernels "
            f"(it offers: {', '.join(offered) or 'none'}; or --kernels tvm)"
        )
    if target.is_native and library not in local_kernel_libraries():
        if requested == "auto":
            return []  # nothing here could run (and check) the artifact: TVM alone
        raise EdgecvError(
            f"the edgecv runtime here was built without {library} kernels, so the artifact "
            f"could not be checked: install {KERNEL_PACKAGES[library]} and reinstall edgecv, "
            "or compile with --kernels tvm"
        )
    return [library]


def _check_device_code(library: Path, target: ResolvedTarget) -> list[str]:
    """GPU libraries must embed compiled kernels for exactly the requested architecture."""
    if target.arch is None:
        return []
    from ..devicecode import embedded_device_code, embeds_cuda_source

    code = embedded_device_code(library)
    if not code:
        why = (
            " (CUDA source instead: TVM's CUDA module was not loaded)"
            if embeds_cuda_source(library)
            else ""
        )
        raise EdgecvError(f"{library.name} embeds no compiled GPU code{why}")
    wrong = sorted({c.arch for c in code} - {target.arch.sm})
    if wrong:
        raise EdgecvError(
            f"{library.name} embeds code for {', '.join(wrong)}, not {target.arch.sm}"
        )
    return [f"{c.arch} {c.kind}" for c in code]
