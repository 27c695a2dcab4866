"""bench/board.py, the script a user runs on a board with the runtime-only install: here on x86
artifacts of the shipped digits classifier (fp32 and int8, ONNX Runtime beside them) with the
installed package, and under qemu-aarch64 on rpi4 artifacts with the aarch64 runtime wheel (as
tests/test_device_wheel.py plays a device). In both, MXNet, TVM and ONNX are made unimportable
and every import of them is recorded: the script must work without them and never try."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from device_wheels import arm_python, arm_site, device_env, run_checked, runtime_wheels

from conftest import REPO

pytestmark = pytest.mark.integration

BOARD = REPO / "bench" / "board.py"
CLS = "mobilenet0.25_digits"
REPEAT = 3
BLOCKED = ("mxnet", "tvm", "tvm_ffi", "onnx")

# Runs board.py as __main__ with the compile stack unimportable; writes the names it tried
# to import (none, if board.py keeps its promise) to argv[1].
GUARD = f"""
import importlib.abc, json, runpy, sys
record, script = sys.argv[1], sys.argv[2]
tried = []
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            tried.append(name)
            raise ModuleNotFoundError("blocked: " + name, name=name)
sys.meta_path.insert(0, Blocked())
sys.argv = sys.argv[2:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    open(record, "w").write(json.dumps(tried))
"""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, digits_root) -> dict[str, Path]:
    """The digits classifier for x86_64 and rpi4, fp32 and int8 (one calibration)."""
    from edgecv.compile import CompileOptions, compile_model

    tmp = tmp_path_factory.mktemp("board-artifacts")
    arts: dict[str, Path] = {}
    for target in ("x86_64", "rpi4"):
        for precision in ("fp32", "int8"):
            extra = {}
            if precision == "int8":
                extra = (
                    {"calib_data": str(digits_root / "classification" / "train")}
                    if target == "x86_64"
                    else {"calibration_table": str(arts["x86_64-int8"] / "calibration.json")}
                )
            key = f"{target}-{precision}"
            arts[key] = compile_model(
                CompileOptions(
                    CLS, target=target, precision=precision, out_dir=str(tmp / key), **extra
                )
            )
    return arts


def _board(python: list[object], args: list[object], tmp: Path, **kw) -> tuple[dict, str, list]:
    """Run board.py under the import guard: its JSON report, its stdout, the blocked imports."""
    (tmp / "guard.py").write_text(GUARD)
    record, out = tmp / "tried.json", tmp / "board.json"
    res = run_checked(
        [*python, tmp / "guard.py", record, BOARD, *args, "--json", out],
        cwd=tmp,
        **kw,
    )
    return json.loads(out.read_text()), res.stdout, json.loads(record.read_text())


def _check_report(report: dict, arts: list[str], machine: str) -> dict[str, dict]:
    """The fields every report has; returns its edgecv rows by precision."""
    assert report["schema"] == "edgecv.board-bench" and report["schema_version"] == 1
    m = report["machine"]
    assert m["machine"] == machine
    assert m["cpu_model"] and m["cpu_count"] >= 1
    assert set(m["isa_features"]) <= set(m["cpu_flags"])
    assert report["settings"]["repeat"] == REPEAT
    edge = {r["precision"]: r for r in report["results"] if r["engine"] == "edgecv"}
    assert sorted(edge) == ["fp32", "int8"] and [r["artifact"] for r in edge.values()] == arts
    for r in report["results"]:
        assert r["runs"] == REPEAT and 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"], r
        assert r["model"] == CLS
    for r in edge.values():
        assert 0 < r["network_median_ms"] and r["input_shape"] == [1, 3, 64, 64]
    (ratio,) = [c for c in report["comparisons"] if c["compare"] == "int8 vs fp32"]
    assert ratio["speedup"] == pytest.approx(edge["fp32"]["median_ms"] / edge["int8"]["median_ms"])
    return edge


def test_board_bench_on_x86(artifacts, tmp_path):
    """x86 fp32 and int8 artifacts and ONNX Runtime on the same input: one ORT session for
    the float model both carry, plus ORT's own int8 of it given with --onnx; the fp32
    artifact's outputs equal to ORT's, the JSON fields and the printed table, and no import
    of MXNet, TVM or ONNX."""
    import numpy as np

    from edgecv.bench import onnxruntime_int8

    arts = [str(artifacts["x86_64-fp32"]), str(artifacts["x86_64-int8"])]
    qdq = tmp_path / "qdq.onnx"
    calib = np.random.RandomState(1).uniform(-2, 2, (4, 1, 3, 64, 64)).astype(np.float32)
    onnxruntime_int8(Path(arts[0]) / "model.onnx", list(calib), qdq)
    report, stdout, tried = _board(
        [sys.executable],
        [*arts, "--onnx", f"ort-int8={qdq}", "--repeat", REPEAT, "--block", 2, "--warmup", 1],
        tmp_path,
    )
    assert tried == []
    edge = _check_report(report, arts, "x86_64")
    ort, ort_int8 = [r for r in report["results"] if r["engine"] == "onnxruntime"]
    assert ort["precision"] == "fp32" and report["onnxruntime"] is None
    assert ort_int8["label"] == "ort-int8" and ort_int8["onnx"] == str(qdq)
    assert report["versions"]["onnxruntime"] and "dnnl" in report["versions"]["kernel_libraries"]
    fp32 = edge["fp32"]
    assert fp32["max_abs_diff_vs_onnxruntime_fp32"] <= 1e-4 * fp32["output_scale"], fp32
    compares = {c["compare"] for c in report["comparisons"]}
    assert {
        "edgecv fp32 vs onnxruntime fp32",
        "edgecv int8 vs onnxruntime fp32",
        "edgecv int8 vs onnxruntime ort-int8",
    } <= compares
    lines = stdout.splitlines()
    assert lines[0].startswith("machine: ") and report["machine"]["cpu_model"] in lines[0]
    assert sum(line.startswith(("edgecv ", "onnxruntime ")) for line in lines) == 4, stdout


def test_board_bench_refuses_what_it_cannot_run(artifacts, tmp_path):
    """A folder that is no artifact, an artifact for another machine, a bad --onnx: one line
    each, with the documented exit code."""
    cases = [
        ([tmp_path], 4, "not an artifact directory"),
        ([artifacts["rpi4-fp32"]], 4, "built for aarch64-linux-gnu"),
        ([artifacts["x86_64-fp32"], "--onnx", "int8"], 2, "--onnx takes LABEL=PATH"),
        ([artifacts["x86_64-fp32"], "--onnx", f"q={tmp_path / 'no.onnx'}"], 3, "no such file"),
    ]
    for args, code, message in cases:
        res = subprocess.run(
            [sys.executable, BOARD, *map(str, args)], capture_output=True, text=True, cwd=tmp_path
        )
        assert res.returncode == code and message in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.mark.targets
def test_board_bench_under_qemu_with_the_aarch64_wheel(artifacts, tmp_path_factory):
    """rpi4 fp32 and int8 run by the aarch64 runtime wheel in Debian's arm64 Python under
    qemu-aarch64 (no ONNX Runtime there: the report says it was skipped). Times under qemu
    mean nothing; this shows the script runs as it will on a board."""
    tmp = tmp_path_factory.mktemp("board-arm")
    wheel = runtime_wheels(tmp_path_factory.mktemp("wheels"), ("aarch64",))["aarch64"]
    site = arm_site(wheel, tmp / "site")
    arts = [str(artifacts["rpi4-fp32"]), str(artifacts["rpi4-int8"])]
    report, _, tried = _board(
        arm_python(),
        [*arts, "--repeat", REPEAT, "--block", REPEAT, "--warmup", 0],
        tmp,
        env=device_env(PYTHONPATH=str(site)),
        timeout=600,
    )
    assert tried == []
    _check_report(report, arts, "aarch64")
    assert "not importable" in report["onnxruntime"]["skipped"]
    assert report["versions"]["kernel_libraries"] == ["xnnpack"]
    assert all(r["engine"] == "edgecv" for r in report["results"])
