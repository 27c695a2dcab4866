"""``edgecv tune``: MetaSchedule tuning of the TVM-generated part of a model, into a database
that ``edgecv compile --tuning-db DIR`` applies without tuning again.

The graph tuned is the one compile builds: the same ONNX export, the same import and, on x86
with oneDNN, the same offload rewrite — so what is tuned is exactly the code TVM generates
around the library calls (or the whole network with ``--kernels tvm``). Tasks are found
after TVM's legalization and fusion, as ``compile`` finds them, so the database's keys
match. Candidates are measured on this machine: only a target this machine can run is tuned
(a board needs tuning on the board).

The database (``DIR/database_workload.json`` and ``database_tuning_record.json``, appended as
trials finish) survives an interruption; tuning again into the same DIR adds trials to it.
Cost model: MetaSchedule's random one (XGBoost's would need a 300 MB dependency); measured
trials guide the evolutionary search all the same.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

BUILDER_TIMEOUT_S = 120  # the default 30 s kills builds on a loaded 2-core machine


@dataclass
class TuneOptions:
    model: str
    db: str
    trials: int = 64
    target: str = "x86_64"
    input_size: int | None = None
    pretrained: str | None = None
    kernels: str = "auto"
    seed: int = 0


def database_records(db: str | Path) -> int:
    """How many tuning records a database directory holds (0 if none)."""
    path = Path(db) / "database_tuning_record.json"
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def check_database(db: str | Path) -> Path:
    """A tuning database directory compile can read, or a clear error."""
    path = Path(db)
    if not path.is_dir():
        raise InvalidInputError(f"tuning database not found: {path} (made by `edgecv tune`)")
    for name in ("database_workload.json", "database_tuning_record.json"):
        if not (path / name).is_file():
            raise InvalidInputError(f"{path} is not a tuning database: {name} is missing")
    return path


def tune_model(options: TuneOptions, step: Any = lambda _: None) -> dict[str, Any]:
    """Tune ``options.model`` for ``options.target``; returns a summary (tasks, trials,
    records in the database, seconds)."""
    from .. import zoo
    from ..export import export_onnx
    from ..targets import check_toolchain, resolve_target
    from . import _choose_kernels, deploy_head
    from .worker import run_job

    if options.trials < 1:
        raise InvalidInputError(f"--trials must be at least 1, got {options.trials}")
    target = resolve_target(options.target, None, "fp32")
    if not target.is_native:
        raise InvalidInputError(
            f"tuning measures candidates on this machine, which cannot run {target.label} code: "
            "tune on the device itself (or compile untuned)"
        )
    check_toolchain(target)
    spec = zoo.MODELS.get(options.model)
    data = spec.data if options.input_size is None else spec.data.scaled(options.input_size)
    kernels = _choose_kernels(options.kernels, target)
    db = Path(options.db)
    if db.exists() and not db.is_dir():
        raise InvalidInputError(f"{db} exists and is not a directory")
    db.mkdir(parents=True, exist_ok=True)
    before = database_records(db)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgecv-tune-") as tmp:
        step(f"building {options.model} (MXNet Gluon) and exporting ONNX")
        net = zoo.get_model(options.model, pretrained=options.pretrained)
        input_shape = (1, 3, *data.input_size)
        head = deploy_head(net, input_shape, 5)
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(net, onnx_path, input_shape, seed=options.seed, output_names=head["outputs"])
        where = f" around {', '.join(kernels)} calls" if kernels else ""
        step(
            f"tuning TVM's code{where} for {target.label}: {options.trials} trials into {db} "
            "(interrupt at any time: finished trials stay in the database)"
        )
        done = run_job(
            {
                "onnx": str(onnx_path),
                "target": target.tvm,
                "kernels": kernels,
                "tune": {"work_dir": str(db), "trials": options.trials, "seed": options.seed},
            }
        )
    summary = {
        "model": options.model,
        "target": target.label,
        "input_shape": list(input_shape),
        "kernels": kernels,
        "tasks": done["tasks"],
        "trials": options.trials,
        "records_added": database_records(db) - before,
        "records": database_records(db),
        "seconds": round(time.perf_counter() - t0, 1),
        "database": str(db),
    }
    (db / "edgecv-tune.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def tune_in_worker(mod: Any, target: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The tuning itself (in the build child process): MetaSchedule on ``mod``."""
    from tvm.s_tir import meta_schedule as ms

    tvm_target = _with_cores(target)
    with tvm_target:
        fused = _fused(mod, tvm_target)
    tasks = ms.relax_integration.extract_tasks(fused, tvm_target)
    if not tasks:
        raise InvalidInputError("TVM generates no code for this model here: nothing to tune")
    ms.relax_integration.tune_relax(
        fused,
        params={},
        target=tvm_target,
        work_dir=job["work_dir"],
        max_trials_global=int(job["trials"]),
        num_trials_per_iter=min(64, int(job["trials"])),
        builder=ms.builder.LocalBuilder(timeout_sec=BUILDER_TIMEOUT_S),
        cost_model="random",
        seed=int(job.get("seed", 0)),
    )
    return {"tasks": len(tasks)}


def _with_cores(target: Any) -> Any:
    """The target with the core count MetaSchedule's CPU rules require (this machine's,
    where tuning measures)."""
    import os

    import tvm

    doc = dict(target.export()) if isinstance(target, tvm.target.Target) else dict(target)
    doc.setdefault("num-cores", len(os.sched_getaffinity(0)))
    return tvm.target.Target(doc)


def _fused(mod: Any, target: Any) -> Any:
    """The module as compile_relax prepares it before applying a database (library dispatch,
    legalization, fusion): tasks are its fused TIR functions, so tuning must see the same."""
    import tvm
    from tvm import relax
    from tvm.relax import pipeline

    try:
        dispatch = pipeline.library_dispatch_passes(target)
    except (ValueError, AttributeError):
        dispatch = []
    return tvm.transform.Sequential(
        [
            *dispatch,
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
        ]
    )(mod)


def build_tuned(mod: Any, target: Any, db: str) -> Any:
    """A Relax executable with the database's schedules applied (untuned functions as
    compile would leave them)."""
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.JSONDatabase(work_dir=str(check_database(db)))
    return ms.relax_integration.compile_relax(database, mod, _with_cores(target), params=None)


__all__ = ["TuneOptions", "check_database", "database_records", "tune_model"]
