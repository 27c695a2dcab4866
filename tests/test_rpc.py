"""Device farms through TVM's RPC, on loopback: `edgecv rpc tracker` and `edgecv rpc server`
as the user starts them, `edgecv tune --rpc` measuring candidates on the "board" (a server
on 127.0.0.1) into a database that `edgecv compile --tuning-db` applies, and `edgecv bench
--rpc` running artifacts there, oneDNN calls included (the server registers edgecv's kernels;
TVM's own server, started beside it, does not and is refused with a reason)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgecv.compile import CompileOptions
from edgecv.deploy import TuneOptions, compile_model, tune_model
from edgecv.errors import EdgecvError, InvalidInputError
from edgecv.runtime import Predictor, read_image

from conftest import SAMPLE_IMAGE

pytestmark = pytest.mark.integration

pytest.importorskip("tornado", reason="TVM's RPC tracker needs tornado: pip install '.[test]'")

MODEL, SIZE, KEY = "mobilenet0.25_digits", 32, "loopback"
EDGECV = Path(sys.executable).parent / "edgecv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, ready: str, timeout_s: float = 60) -> subprocess.Popen:
    """Start ``edgecv ARGS`` in its own process group; wait for ``ready`` in its output."""
    out = open(log, "w")  # noqa: SIM115 - the child writes it for its whole life
    proc = subprocess.Popen(
        ["nice", "-n", "10", str(EDGECV), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its TVM worker processes too: one group to end
    )
    deadline = time.monotonic() + timeout_s
    while ready not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise AssertionError(f"edgecv {' '.join(args)} did not start:\n{log.read_text()}")
        time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def farm(tmp_path_factory, request) -> dict[str, str]:
    """A tracker and one board (an `edgecv rpc server` with key KEY) on 127.0.0.1, plus TVM's
    own RPC server under the key "plain"; all ended (process groups) after the module."""
    tmp = tmp_path_factory.mktemp("farm")
    procs: list[subprocess.Popen] = []
    request.addfinalizer(lambda: [_stop(p) for p in reversed(procs)])
    procs.append(
        _start(["rpc", "tracker", "--host", "127.0.0.1", "--port", str(_free_port())],
               tmp / "tracker.log", "listening on")
    )  # fmt: skip
    tracker = (tmp / "tracker.log").read_text().split("listening on ")[1].split()[0]
    procs.append(
        _start(["rpc", "server", "--tracker", tracker, "--key", KEY, "--host", "127.0.0.1",
                "--port", str(_free_port())], tmp / "server.log", "registered with")
    )  # fmt: skip
    plain_port = _free_port()
    plain = subprocess.Popen(
        [sys.executable, "-m", "tvm.exec.rpc_server", "--tracker", tracker, "--key", "plain",
         "--host", "127.0.0.1", "--port", str(plain_port), "--port-end", str(plain_port + 1)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    procs.append(plain)
    from edgecv.compile.rpc import parse_address, registered_boards

    deadline = time.monotonic() + 60
    while True:  # servers register a moment after they listen
        try:
            registered_boards(parse_address(tracker), KEY)
            registered_boards(parse_address(tracker), "plain")
            break
        except EdgecvError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return {"tracker": tracker, "dir": str(tmp)}


@pytest.fixture(scope="module")
def tuned(farm) -> tuple[Path, dict]:
    db = Path(farm["dir"]) / "db"
    summary = tune_model(
        TuneOptions(MODEL, str(db), trials=2, input_size=SIZE, kernels="tvm",
                    rpc=farm["tracker"], key=KEY)
    )  # fmt: skip
    return db, summary


def test_tune_on_the_board_then_compile_with_its_database(farm, tuned):
    db, summary = tuned
    assert summary["measured_on"]["key"] == KEY and summary["measured_on"]["boards"] == 1
    assert summary["records_added"] == summary["records"] == 2, summary
    records = [json.loads(line) for line in (db / "database_tuning_record.json").open()]
    run_secs = [r[1][1] for r in records]  # measured on the board: real times, not failures
    assert all(len(s) == 1 and 0 < s[0] < 1 for s in run_secs), run_secs
    arts = {
        name: compile_model(
            CompileOptions(MODEL, input_size=SIZE, kernels="tvm", tuning_db=tuning,
                           out_dir=str(Path(farm["dir"]) / name))
        )
        for name, tuning in (("tuned", str(db)), ("untuned", None))
    }  # fmt: skip
    assert (arts["tuned"] / "model.so").read_bytes() != (arts["untuned"] / "model.so").read_bytes()
    image = read_image(SAMPLE_IMAGE)
    a = Predictor(arts["tuned"]).run(image, top_k=0).outputs[0]
    b = Predictor(arts["untuned"]).run(image, top_k=0).outputs[0]
    assert float(np.abs(a - b).max()) <= 1e-4 * float(np.abs(b).max())


def test_bench_on_the_board(farm, tuned, tmp_path):
    """`edgecv bench --rpc`: the oneDNN-offloaded artifact runs on the board (edgecv's
    kernels registered by its server) and agrees with ONNX Runtime; TVM's own server cannot
    run it and says why; the --kernels tvm artifact runs on either."""
    art = compile_model(CompileOptions(MODEL, input_size=SIZE, out_dir=str(tmp_path / "dnnl")))
    assert json.loads((art / "manifest.json").read_text())["kernels"] == ["dnnl"]
    report = tmp_path / "bench.json"
    out = subprocess.run(
        [str(EDGECV), "bench", str(art), "--rpc", farm["tracker"], "--key", KEY,
         "--repeat", "5", "--json", str(report)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "network only" in out.stdout and KEY in out.stdout, out.stdout
    (row,) = json.loads(report.read_text())["results"]
    assert row["network_on_board"]["median_ms"] > 0 and len(row["network_on_board"]["runs_ms"]) == 3
    assert row["max_abs_diff_vs_onnxruntime"] <= 1e-4 * row["output_scale"], row
    plain = subprocess.run(
        [str(EDGECV), "bench", str(art), "--rpc", farm["tracker"], "--key", "plain"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert plain.returncode != 0 and "edgecv.dnnl" in plain.stderr, plain.stderr
    assert "edgecv rpc server" in plain.stderr


def test_farm_requests_that_cannot_work_are_refused(farm, tmp_path):
    db = str(tmp_path / "db")
    with pytest.raises(EdgecvError, match="no RPC server with key 'rpi9'.*keys there: "):
        tune_model(TuneOptions(MODEL, db, trials=1, input_size=SIZE, rpc=farm["tracker"],
                               key="rpi9"))  # fmt: skip
    with pytest.raises(EdgecvError, match="cannot reach the RPC tracker"):
        tune_model(TuneOptions(MODEL, db, trials=1, input_size=SIZE,
                               rpc=f"127.0.0.1:{_free_port()}", key=KEY))  # fmt: skip
    with pytest.raises(InvalidInputError, match="--rpc wants HOST:PORT"):
        tune_model(TuneOptions(MODEL, db, trials=1, rpc="localhost", key=KEY))
    with pytest.raises(InvalidInputError, match="give --rpc"):
        tune_model(TuneOptions(MODEL, db, trials=1, key=KEY))
    with pytest.raises(InvalidInputError, match="cannot run rpi5 code.*--rpc"):
        tune_model(TuneOptions(MODEL, db, trials=1, target="rpi5"))
