"""The full zoo sweep: every model of the catalog through the parity tests that the ordinary
run (`make test`) takes representatives of (tests/conftest.py:zoo_models).

    python -m tests.sweep                      # make sweep: every catalog model
    python -m tests.sweep --missing            # make sweep-missing: only the catalog models
                                               # the record lacks or saw fail
    python -m tests.sweep --models a,b         # only these catalog models
    python -m tests.sweep -x -k ssd            # more pytest arguments

Runs those tests with EDGECV_SWEEP=1 (and, for --missing/--models, EDGECV_SWEEP_MODELS naming
the models: zoo_models then yields exactly those) and merges, per model, the outcome of each
of its tests into tests/sweep-result.json: a model that ran gets a new entry with the commit
(HEAD; the record's ``runs`` list edgecv/ and tests/ files that differed from it) and date
of this run, the others keep theirs. ``full_sweep`` is the last run without --missing/--models.
tests/test_tiers.py checks that the record covers the catalog and that nothing in it failed.
The full sweep takes roughly half an hour on a 2-core AVX-512 machine, an hour and more on a
2-core AVX2 one (from per-model times: resnet152_v1 38 s, yolo3_darknet53_coco 67 s,
ssd_512_vgg16_atrous_voc 42 s there): run it when a family's code changes; --missing when
models are added, and commit the record.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "tests" / "sweep-result.json"
SWEEP_TESTS = [
    "tests/test_parity.py::test_chain_parity",
    "tests/test_detection.py::test_detector_parity",
    "tests/test_dense.py::test_segmentation_parity",
    "tests/test_dense.py::test_pose_parity",
    "tests/test_zoo_gluoncv.py",
]
TASKS = ("classification", "detection", "segmentation", "pose")
FORMAT = (
    "full_sweep: the last run over the whole catalog (make sweep); models.NAME.commit/date: "
    "the run that recorded NAME (that full sweep, or a later --missing/--models run), "
    "models.NAME.tests: each of its sweep tests' outcome (passed | failed | skipped), "
    "models.NAME.seconds: their duration (set up included); runs: "
    "the runs some entry comes from (uncommitted: edgecv/ and tests/ files that differed from "
    "the commit)"
)


def _outcomes(junit: Path) -> dict[str, dict[str, str]]:
    """model -> {test name: passed | failed | skipped} from a pytest JUnit XML report."""
    return {m: {t: o for t, (o, _) in tests.items()} for m, tests in _cases(junit).items()}


def _seconds(junit: Path) -> dict[str, float]:
    """model -> seconds its tests took, from a pytest JUnit XML report."""
    return {m: round(sum(s for _, s in t.values()), 1) for m, t in _cases(junit).items()}


def _cases(junit: Path) -> dict[str, dict[str, tuple[str, float]]]:
    models: dict[str, dict[str, tuple[str, float]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        m = re.fullmatch(r"(\w+)\[(.+)\]", case.get("name", ""))
        if not m:
            continue
        test, model = m.groups()
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        models.setdefault(model, {})[test] = (outcome, float(case.get("time", 0)))
    return models


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout


def read_record() -> dict:
    """The record, its models as {name: {commit, date, tests}} (a record written before
    per-model entries existed reads as if each model carried its full sweep's commit)."""
    if not RECORD.is_file():
        return {"models": {}}
    record = json.loads(RECORD.read_text())
    if "full_sweep" not in record:  # the first format: one run, models -> tests
        full = {k: record.pop(k) for k in ("commit", "date", "minutes", "pytest_args")}
        record["full_sweep"] = full
        record["runs"] = [full]
        record["models"] = {
            m: {"commit": full["commit"], "date": full["date"], "tests": tests}
            for m, tests in record["models"].items()
        }
    return record


def failed_tests(entry: dict) -> list[str]:
    return [t for t, outcome in entry["tests"].items() if outcome == "failed"]


def _select(args: argparse.Namespace, catalog: list[str], record: dict) -> list[str] | None:
    """The models this run is limited to, or None for all of them."""
    if args.models is not None:
        names = [n for n in args.models.split(",") if n]
        unknown = [n for n in names if n not in catalog]
        if unknown or not names:
            hints = {n: difflib.get_close_matches(n, catalog, n=3) for n in unknown}
            raise SystemExit(f"--models: not in the catalog: {hints or 'none named'}")
        return names
    if args.missing:
        models = record["models"]
        return [m for m in catalog if m not in models or failed_tests(models[m])]
    return None


def main(argv: list[str]) -> int:
    import edgecv

    parser = argparse.ArgumentParser(
        prog="python -m tests.sweep", description=__doc__.split("\n\n")[0], add_help=True
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--missing",
        action="store_true",
        help="only the catalog models the record lacks or whose last run failed",
    )
    only.add_argument("--models", help="only these catalog models (comma-separated)")
    args, pytest_args = parser.parse_known_args(argv)

    by_task = {t: edgecv.list_models(task=t) for t in TASKS}
    catalog = [m for names in by_task.values() for m in names]
    record = read_record()
    selected = _select(args, catalog, record)
    env = {**os.environ, "EDGECV_SWEEP": "1"}
    if selected is not None:
        if not selected:
            print("every catalog model has a passing entry in the record: nothing to run")
            return 0
        print(f"sweeping {len(selected)} models: {', '.join(selected)}")
        env["EDGECV_SWEEP_MODELS"] = ",".join(selected)

    # what the tests run on, taken before they start (the tree may change while they run)
    run = {
        "commit": _git("rev-parse", "HEAD").strip(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    dirty = _git("status", "--porcelain", "--", "edgecv", "tests").splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "sweep.xml"
        # -P: the checkout's directory stays off sys.path, so the tests import the installed
        # package (C++ module included), not the source tree
        cmd = [sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-ra"]
        cmd += [f"--junitxml={junit}", *SWEEP_TESTS, *pytest_args]
        t0 = time.time()
        code = subprocess.run(cmd, cwd=REPO, env=env).returncode
        if not junit.is_file():
            return code or 1
        # (a test with no model to run shows as one skipped case, id `[name0]`)
        ran = {m: tests for m, tests in _outcomes(junit).items() if m in catalog}
        seconds = _seconds(junit)

    models = {m: e for m, e in record["models"].items() if m in catalog}  # drop renamed ones
    models.update({m: {**run, "tests": t, "seconds": seconds[m]} for m, t in ran.items()})
    this = {**run, "minutes": round((time.time() - t0) / 60, 1), "pytest_args": pytest_args}
    if dirty:
        this["uncommitted"] = sorted(line[3:] for line in dirty)
    full = this if selected is None else record.get("full_sweep")
    # the runs some entry still comes from, with what differed from their commit
    runs = [r for r in record.get("runs", []) if r["date"] != run["date"]] + [this]
    runs = [r for r in runs if any(e["date"] == r["date"] for e in models.values())]
    new = {"format": FORMAT, "full_sweep": full, "runs": runs, "catalog": by_task}
    new["models"] = dict(sorted(models.items()))
    RECORD.write_text(json.dumps(new, indent=1) + "\n")
    unrun = sorted(set(selected or catalog) - set(ran))
    print(f"recorded {len(ran)} models in {RECORD.relative_to(REPO)}")
    if unrun:
        print(f"no outcome for {len(unrun)} selected models: {unrun}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
