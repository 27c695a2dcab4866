"""The test tiers hold what pyproject.toml's markers claim.

- Every test file names its tier in a module-level ``pytestmark``.
- ``pytest -m unit`` collects and passes with numpy only: run in a fresh process on the
  source tree (not the installed package), with MXNet, TVM, tvm-ffi, ONNX, ONNX Runtime and
  edgecv's C++ module made unimportable by an import hook that every process it starts
  inherits (a ``sitecustomize`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sweep import RECORD, TASKS, failed_tests

from conftest import REPO, TIERS

pytestmark = pytest.mark.unit

TESTS = sorted((REPO / "tests").glob("test_*.py"))
BLOCKED = ("mxnet", "tvm", "tvm_ffi", "onnx", "onnxruntime")
INNER = "EDGECV_UNIT_TIER_RUN"  # set in the unit-tier run, which must not start itself again

BLOCKER = f"""
import importlib.abc, sys

class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r} or name == "edgecv._runtime":
            raise ModuleNotFoundError("blocked for the unit tier: " + name, name=name)

sys.meta_path.insert(0, _Blocked())
"""


def _module_tiers(path: Path) -> list[str]:
    """The tier marks named in ``path``'s module-level ``pytestmark``."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return [
                n.attr
                for n in ast.walk(node.value)
                if isinstance(n, ast.Attribute) and n.attr in TIERS
            ]
    return []


@pytest.mark.parametrize("path", TESTS, ids=[p.name for p in TESTS])
def test_every_test_file_names_its_tier(path):
    assert _module_tiers(path), f"{path.name} has no module-level pytestmark with a tier {TIERS}"


def test_unit_tier_runs_with_numpy_only(tmp_path):
    if os.environ.get(INNER):
        pytest.skip("this is the unit-tier run")
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({INNER: "1", "PYTHONPATH": os.pathsep.join([str(tmp_path / "hook"), str(REPO)])})
    # the hook works, and edgecv comes from the source tree
    code = "import edgecv; print(edgecv.__file__); import onnx"
    probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "blocked for the unit tier: onnx" in probe.stderr, probe.stderr
    assert probe.stdout.startswith(str(REPO / "edgecv")), probe.stdout
    cmd = [sys.executable, "-m", "pytest", "-m", "unit", "-p", "no:cacheprovider", "-q"]
    cmd += [f"--basetemp={tmp_path / 'run'}", str(REPO / "tests")]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    tail = r.stdout[-6000:] + r.stderr[-2000:]
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and " error" not in r.stdout, tail


def test_sweep_record_covers_the_catalog():
    """`make sweep` (tests/sweep.py), or `make sweep-missing` for models added since, ran
    every model of the catalog through its parity tests, and none failed; each model's entry
    names the run (commit, date) it came from, and that run is in the record."""
    import edgecv

    if not RECORD.is_file():
        pytest.skip(f"no sweep recorded yet ({RECORD.name}): run `make sweep` and commit it")
    record = json.loads(RECORD.read_text())
    assert {"format", "full_sweep", "runs", "catalog", "models"} <= record.keys(), (
        f"{RECORD.name} predates per-model entries: run `make sweep-missing` to rewrite it"
    )
    models = record["models"]
    catalog = [m for task in TASKS for m in edgecv.list_models(task=task)]
    missing = [m for m in catalog if not models.get(m, {}).get("tests")]
    failed = {m: failed_tests(e) for m, e in models.items() if failed_tests(e)}
    assert not missing, f"models no sweep has run (run `make sweep-missing`): {missing}"
    assert not failed, f"failed in their last sweep (fix, then `make sweep-missing`): {failed}"
    runs = {(r["commit"], r["date"]) for r in record["runs"]}
    assert (record["full_sweep"]["commit"], record["full_sweep"]["date"]) in runs
    unknown = {m: (e["commit"], e["date"]) for m, e in models.items()}
    unknown = {m: run for m, run in unknown.items() if run not in runs}
    assert not unknown, f"entries whose run the record does not list: {unknown}"
