"""TVM's part of a compile (ONNX import, kernel offload or integer lowering, build), or of
``edgecv tune`` (import, offload, MetaSchedule tuning), run in a child process.

TVM 0.27 keeps module objects alive after their last Python reference is gone (each
compile with weights embedded as constants left ~2x the weights' size behind), so a
process that compiles many models (benchmarks, test suites, a build server) would grow
without bound. In a child process all of it is returned to the system when the build ends;
a crash inside TVM also becomes an error message instead of the end of the caller.

    python -m edgecv.compile.tvm_process JOB.json     # writes JOB.json's "result" file
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import EdgecvError


def build_library(
    onnx_path: Path,
    target: dict[str, Any],
    library: Path,
    weights: Path,
    linker: str | None,
    kernels: list[str],
    int8: dict[str, Any] | None = None,
    fp16: bool = False,
    tuning_db: str | None = None,
    gpu_code: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Build ``library`` (and ``weights``) from ``onnx_path`` in a child process.

    ``int8``: {"inputs": {layer key (hex): [scale, signed]}, "keep_float": [selectors]}
    makes the calibrated layers int8; ``fp16``: half precision (weights embedded in the
    library as fp16 constants); ``tuning_db``: apply that MetaSchedule database (edgecv
    tune). Returns the parameter entries of the weights file and the offload summary."""
    done = run_job(
        {
            "onnx": str(onnx_path),
            "target": target,
            "library": str(library),
            "weights": str(weights),
            "linker": linker,
            "kernels": kernels,
            "int8": int8,
            "fp16": fp16,
            "tuning_db": tuning_db,
            "gpu_code": gpu_code,
        }
    )
    return done["params"], done["offloaded"]


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run a build (or tuning) job in a child process; its result, or its error raised."""
    with tempfile.TemporaryDirectory(prefix="edgecv-build-") as tmp:
        path, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        path.write_text(json.dumps({**job, "result": str(result)}))
        proc = subprocess.run(
            [sys.executable, "-m", "edgecv.compile.tvm_process", str(path)],
            capture_output=True,
            text=True,
        )
        done = json.loads(result.read_text()) if result.is_file() else None
    if done is not None and "error" in done:
        from .. import errors

        kind = getattr(errors, done.get("kind", ""), EdgecvError)
        raise (kind if isinstance(kind, type) and issubclass(kind, EdgecvError) else EdgecvError)(
            done["error"]
        )
    if proc.returncode != 0 or done is None:
        tail = " | ".join(proc.stderr.strip().splitlines()[-6:])
        raise EdgecvError(f"the TVM build process failed (exit {proc.returncode}): {tail}")
    return done


def build_into(
    writer: Any,
    target: Any,
    kernels: list[str],
    int8: dict[str, Any] | None = None,
    fp16: bool = False,
    tuning_db: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`build_library` from an artifact writer's ONNX model into its library and
    weights files, for a resolved target."""
    from ..artifact import LIBRARY, ONNX, WEIGHTS

    return build_library(
        writer.path(ONNX),
        target.tvm,
        writer.path(LIBRARY),
        writer.path(WEIGHTS),
        target.linker,
        kernels,
        int8,
        fp16,
        tuning_db,
        target.gpu_code,
    )


def _main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    result = Path(job["result"])
    try:
        import onnx

        from ..artifact import write_weights
        from . import tvm_api

        fp16, int8 = bool(job.get("fp16")), job.get("int8")
        mod, params = tvm_api.import_onnx(
            onnx.load(job["onnx"]), embed_params=bool(job["kernels"]) or fp16 or bool(int8)
        )
        if fp16:
            mod = tvm_api.to_fp16(mod)
        offloaded: dict[str, Any] = {}
        quant, keep_float = None, []
        if int8:
            from .int8_plan import Quantization

            quant = Quantization(
                {int(k, 16): (float(s), bool(sg)) for k, (s, sg) in int8["inputs"].items()}
            )
            keep_float = int8.get("keep_float", [])
            if not job["kernels"]:  # no kernel library: integer ops in TVM-generated code
                from .int8_lowering import integerize
                from .relax_prepare import prepare

                mod, offloaded = integerize(prepare(mod), quant, keep_float)
        for library in job["kernels"]:
            mod, offloaded = tvm_api.offload_kernels(mod, library, quant, keep_float)
        if job.get("tune"):
            from .metaschedule import tune_module

            result.write_text(json.dumps(tune_module(mod, job["target"], job["tune"])))
            return 0
        tvm_api.build(
            mod,
            job["target"],
            Path(job["library"]),
            linker=job["linker"],
            tuning_db=job.get("tuning_db"),
            gpu_code=job.get("gpu_code"),
        )
        entries = write_weights(Path(job["weights"]), params)
    except Exception as err:  # reported to the parent, which raises it
        ours = isinstance(err, EdgecvError)
        message = str(err) if ours else f"{type(err).__name__}: {err}"
        result.write_text(
            json.dumps({"error": message, "kind": type(err).__name__ if ours else ""})
        )
        return 1
    result.write_text(json.dumps({"params": entries, "offloaded": offloaded}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
