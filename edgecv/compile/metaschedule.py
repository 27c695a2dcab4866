"""TVM's MetaSchedule API, for ``edgecv tune`` (tune.py) and for builds that apply a tuning
database (tvm_api.build): the task extraction and tuning run in the build child process
(tvm_process.py), and the tuned build.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError

BUILDER_TIMEOUT_S = 120  # the default 30 s kills builds on a loaded 2-core machine


def tune_module(mod: Any, target: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
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

    database = ms.database.JSONDatabase(work_dir=str(db))  # checked by the caller
    return ms.relax_integration.compile_relax(database, mod, _with_cores(target), params=None)
