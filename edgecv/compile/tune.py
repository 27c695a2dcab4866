"""``edgecv tune`` on a bundle: MetaSchedule tuning of the TVM-generated part of a model,
into a database that ``edgecv compile --tuning-db DIR`` applies without tuning again.

The graph tuned is the one compile builds: the same ONNX export, the same import and, on x86
with oneDNN, the same offload rewrite — so what is tuned is exactly the code TVM generates
around the library calls (or the whole network with ``--kernels tvm``). Tasks are found
after TVM's legalization and fusion, as ``compile`` finds them, so the database's keys
match. Candidates are measured on this machine, where only a target this machine can run is
tuned, or with ``rpc`` on the boards registered under a key with a TVM RPC tracker (see
compile/rpc.py): built and linked here (the target's cross linker), timed there, the database
kept here.

The database (``DIR/database_workload.json`` and ``database_tuning_record.json``, appended as
trials finish) survives an interruption; tuning again into the same DIR adds trials to it.
Cost model: MetaSchedule's random one (XGBoost's would need a 300 MB dependency); measured
trials guide the evolutionary search all the same.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError


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


def tune_bundle(
    bundle_path: str | Path,
    db: str | Path,
    trials: int = 64,
    target: str = "x86_64",
    kernels: str = "auto",
    seed: int = 0,
    step: Any = lambda _: None,
    rpc: str | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """Tune the bundle at ``bundle_path`` for ``target`` into the database ``db``; returns a
    summary (tasks, trials, records in the database, seconds).

    ``rpc`` (``HOST:PORT`` of a TVM RPC tracker) and ``key``: measure candidates on the
    boards registered there under ``key`` instead of on this machine."""
    from ..bundle import read_bundle
    from ..targets import check_toolchain, resolve_target
    from .options import choose_kernels
    from .tvm_process import run_job

    if trials < 1:
        raise InvalidInputError(f"--trials must be at least 1, got {trials}")
    resolved = resolve_target(target, None, "fp32")
    if key and not rpc:
        raise InvalidInputError("--key names boards of an RPC tracker: give --rpc HOST:PORT too")
    if rpc is None and not resolved.is_native:
        raise InvalidInputError(
            f"tuning measures candidates on this machine, which cannot run {resolved.label} "
            "code: measure them on the boards (--rpc HOST:PORT --key KEY, see "
            "`edgecv rpc`), or compile untuned"
        )
    if resolved.gpu_code is not None and rpc is not None:
        raise InvalidInputError(f"tuning over RPC measures CPU code; {resolved.label} is a GPU")
    check_toolchain(resolved)
    boards = None
    if rpc is not None:
        from .rpc import board_threads, parse_address, registered_boards

        if not key:
            raise InvalidInputError("--rpc needs --key: which boards of the tracker to use")
        tracker = parse_address(rpc)
        count = registered_boards(tracker, key)
        boards = {
            "host": tracker[0],
            "port": tracker[1],
            "key": key,
            "boards": count,
            "cores": board_threads(tracker, key),
            "linker": resolved.linker,
        }
    _, bundle = read_bundle(bundle_path)
    chosen = choose_kernels(kernels, resolved)
    db = Path(db)
    if db.exists() and not db.is_dir():
        raise InvalidInputError(f"{db} exists and is not a directory")
    db.mkdir(parents=True, exist_ok=True)
    before = database_records(db)
    t0 = time.perf_counter()
    where = f" around {', '.join(chosen)} calls" if chosen else ""
    measured = (
        f"measured on {boards['boards']} board(s) {key!r} ({boards['cores']} threads) of the "
        f"tracker {rpc}"
        if boards
        else "measured here"
    )
    step(
        f"tuning TVM's code{where} for {resolved.label}: {trials} trials {measured}, into {db} "
        "(interrupt at any time: finished trials stay in the database)"
    )
    done = run_job(
        {
            "onnx": str(bundle_path),
            "target": resolved.tvm,
            "kernels": chosen,
            "tune": {"work_dir": str(db), "trials": trials, "seed": seed, "rpc": boards},
        }
    )
    summary = {
        "model": bundle.name,
        "target": resolved.label,
        "input_shape": list(bundle.input_shape),
        "kernels": chosen,
        "tasks": done["tasks"],
        "trials": trials,
        "records_added": database_records(db) - before,
        "records": database_records(db),
        "seconds": round(time.perf_counter() - t0, 1),
        "database": str(db),
        "measured_on": (
            {"tracker": rpc, "key": key, "boards": boards["boards"], "threads": boards["cores"]}
            if boards
            else "this machine"
        ),
    }
    (db / "edgecv-tune.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


__all__ = ["check_database", "database_records", "tune_bundle"]
