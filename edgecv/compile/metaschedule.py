"""TVM's MetaSchedule API, for ``edgecv tune`` (tune.py) and for builds that apply a tuning
database (tvm_api.build): the task extraction and tuning run in the build child process
(tvm_process.py), and the tuned build.

Candidates are built here and measured either here (MetaSchedule's local runner) or, with
``edgecv tune --rpc``, on the boards registered with a TVM RPC tracker (its RPC runner):
each candidate is then linked here into a shared library (with the target's cross linker),
so that a board needs no compiler, and uploaded to a board, which times it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

BUILDER_TIMEOUT_S = 120  # the default 30 s kills builds on a loaded 2-core machine
RPC_SESSION_TIMEOUT_S = 120  # one candidate on a board: upload, load, 3+ timed runs


def tune_module(mod: Any, target: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The tuning itself (in the build child process): MetaSchedule on ``mod``."""
    from tvm.s_tir import meta_schedule as ms

    rpc = job.get("rpc")
    tvm_target = _with_cores(target, rpc["cores"] if rpc else None)
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
        builder=ms.builder.LocalBuilder(
            timeout_sec=BUILDER_TIMEOUT_S,
            f_export=functools.partial(export_shared, linker=rpc["linker"]) if rpc else None,
        ),
        runner=_rpc_runner(rpc) if rpc else "local",
        cost_model="random",
        seed=int(job.get("seed", 0)),
    )
    return {"tasks": len(tasks)}


def _rpc_runner(rpc: dict[str, Any]) -> Any:
    """MetaSchedule's RPC runner: candidates measured on the boards with ``rpc["key"]``,
    as many at a time as there are boards."""
    from tvm.s_tir import meta_schedule as ms

    return ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(
            tracker_host=rpc["host"],
            tracker_port=int(rpc["port"]),
            tracker_key=rpc["key"],
            session_priority=1,
            session_timeout_sec=int(rpc.get("session_timeout_s", RPC_SESSION_TIMEOUT_S)),
        ),
        evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=100),
        f_alloc_argument=alloc_arguments_from_here,
        max_workers=int(rpc.get("boards", 1)),
    )


def alloc_arguments_from_here(
    _session: Any, device: Any, args_info: Any, alloc_repeat: int
) -> list[list[Any]]:
    """The RPC runner's argument allocation, with the random data made here and copied to
    the board: MetaSchedule's default fills them on the board with a function that only
    ``libtvm_runtime_extra`` has (``tvm.contrib.random.random_fill_for_measure``), which a
    board holding TVM's core runtime alone (``libtvm_runtime.so``) lacks."""
    import numpy as np
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common

    rng = np.random.default_rng(0)

    def fill(tensor: Any) -> None:
        shape, dtype = [int(d) for d in tensor.shape], str(tensor.dtype)
        if dtype == "bool":
            data = rng.integers(0, 2, shape).astype(bool)
        elif dtype.startswith(("int", "uint")):
            data = rng.integers(0, 8, shape).astype(dtype)
        else:
            data = rng.uniform(-1, 1, shape).astype(dtype)
        tensor.copyfrom(data)

    return alloc_argument_common(fill, device, args_info, alloc_repeat)


def export_shared(mod: Any, linker: str | None) -> str:
    """MetaSchedule's builder export for the RPC runner: the candidate linked here into a
    shared library (``linker``: the target's cross compiler, None: the native one), where
    MetaSchedule's default exports an object archive the board would have to link."""
    import tempfile

    from tvm.support import cc

    path = str(Path(tempfile.mkdtemp(prefix="edgecv-candidate-")) / "candidate.so")
    mod.export_library(path, fcompile=cc.cross_compiler(linker) if linker else None)
    return path


def _with_cores(target: Any, cores: int | None = None) -> Any:
    """The target with the core count MetaSchedule's CPU rules require: ``cores`` (a board's,
    when it measures), else this machine's."""
    import os

    import tvm

    doc = dict(target.export()) if isinstance(target, tvm.target.Target) else dict(target)
    doc.setdefault("num-cores", cores or len(os.sched_getaffinity(0)))
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
