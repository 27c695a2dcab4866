"""Compile an exported bundle (ONNX model + edgecv metadata) into a float artifact directory:
TVM Relax import, the kernel-library rewrite, build for the target, a check of TVM against
ONNX Runtime, the manifest.

Everything the artifact says about the model (task, pre/post-processing, classes, decode
data) comes from the bundle: this module never imports MXNet, ``edgecv.zoo`` or
``edgecv.export``. int8 builds on it (int8_build.py).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artifact import LIBRARY, ONNX, SCHEMA, SCHEMA_VERSION, WEIGHTS, ArtifactWriter
from ..bundle import read_bundle
from ..errors import EdgecvError, InvalidInputError
from ..parity import check_agreement
from ..targets import KERNEL_PACKAGES, ResolvedTarget, check_toolchain, resolve_target
from .options import CompileOptions, choose_kernels, default_out_dir

Step = Callable[[str], None]
# fp16 artifacts checked against ONNX Runtime's float32 (where they can run): fp16 carries
# 11 significant bits, and accumulating in fp16 loses more over long sums
FP16_RTOL = 2e-2


def toolchain(producer: dict[str, str]) -> dict[str, str]:
    """Versions of everything that made the artifact: the bundle's producer (MXNet for zoo
    exports) and the compile stack."""
    import onnx
    import onnxruntime

    from . import tvm_api

    return {
        "edgecv": __version__,
        **tvm_api.versions(),
        **producer,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def compile_float(
    bundle_path: str | os.PathLike[str], options: CompileOptions, step: Step = lambda _: None
) -> Path:
    """Build the fp32 or fp16 artifact of the bundle at ``bundle_path``; returns its directory.

    Raises an :class:`~edgecv.errors.EdgecvError` subclass on any failure, leaving no
    partial artifact behind."""
    import onnx
    import onnxruntime as ort

    from .tvm_process import build_into

    target: ResolvedTarget = resolve_target(options.target, options.arch, options.precision)
    check_toolchain(target)
    model, bundle = read_bundle(bundle_path)
    name = options.model or bundle.name
    out_dir = Path(options.out_dir or default_out_dir(name, target.label, options.precision))
    tuning: dict[str, Any] = {}
    if options.tuning_db:
        from .tune import check_database, database_records

        tuning = {
            "database": str(check_database(options.tuning_db)),
            "records": database_records(options.tuning_db),
        }
    timings: dict[str, float] = {}
    input_shape = bundle.input_shape

    with ArtifactWriter(out_dir) as writer:
        onnx.save(model, str(writer.path(ONNX)))
        for file_name, array in bundle.files.items():  # decode data, e.g. SSD priors
            np.ascontiguousarray(array, dtype="<f4").tofile(writer.path(file_name))

        t0 = time.perf_counter()
        step(f"compiling with TVM for {target.label} ({target.tvm})")
        kernels = choose_kernels(options.kernels, target)
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
        expected = ref.run(None, {bundle.input["name"]: x})
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

        doc = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "model": {**bundle.model, "name": name},
            "target": target.manifest(),
            "precision": options.precision,
            "toolchain": toolchain(bundle.producer),
            "files": {"library": LIBRARY, "weights": WEIGHTS, "onnx": ONNX},
            "entry": "main",
            "inputs": [
                {
                    "name": bundle.input["name"],
                    "shape": list(input_shape),
                    "dtype": "float32",
                    "layout": "NCHW",
                }
            ],
            "outputs": [
                {"name": n, "shape": list(e.shape), "dtype": str(e.dtype)}
                for n, e in zip(bundle.outputs, expected, strict=True)
            ],
            "params": param_entries,
            "kernels": kernels,
            "preprocess": bundle.preprocess,
            "postprocess": bundle.postprocess,
            "classes": list(bundle.classes),
            "report": {
                "parity": {
                    **bundle.export_report,
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


def _check_device_code(library: Path, target: ResolvedTarget) -> list[str]:
    """GPU libraries must embed compiled kernels for exactly the requested architectures
    (a cubin for each, and the PTX the target adds for newer GPUs)."""
    if not target.gpus:
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
    cubins = {c.arch for c in code if c.kind == "cubin"}
    ptx = {c.arch for c in code if c.kind == "ptx"}
    want_ptx = {target.ptx} if target.ptx else set()
    wrong = sorted((cubins - set(target.sms)) | (ptx - want_ptx))
    if wrong:
        raise EdgecvError(
            f"{library.name} embeds code for {', '.join(wrong)}, not {', '.join(target.sms)}"
        )
    missing = sorted((set(target.sms) - cubins) | (want_ptx - ptx))
    if missing:
        raise EdgecvError(f"{library.name} embeds no code for {', '.join(missing)}")
    return [f"{c.arch} {c.kind}" for c in code]
