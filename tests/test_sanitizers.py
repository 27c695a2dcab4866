"""The C++ runtime under the sanitizers, and its fuzz harnesses (issue 23).

- ASan + UBSan and TSan: edgecv's C++ code (core, kernels, runtime; not oneDNN, XNNPACK or
  the TVM runtime, which are the system's and the wheels' uninstrumented builds) and its
  ctest suite built with ``EDGECV_SANITIZE`` in ``build/sanitize-*``, run with the concurrency
  test (``runtime_cpp/tests/test_concurrency.cc``) on a oneDNN classifier, a oneDNN detector
  and an XNNPACK classifier: threads sharing one predictor, predictors opened, run and closed
  at once (the kernel libraries' layer caches shared), results equal to a serial run's.
- libFuzzer: the harnesses of ``runtime_cpp/fuzz/`` built with clang (``build/fuzz``), each
  run ``EDGECV_FUZZ_SECONDS`` (default 25) from its seed corpus and kept crashes. A crash
  fails the test with the input's path: fix the bug, keep the input in
  ``runtime_cpp/fuzz/regressions/<harness>/``, where every ctest build replays it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.cpp

FUZZ = REPO / "runtime_cpp" / "fuzz"
HARNESSES = ("manifest", "preprocess", "detection", "dense")
CLANG = "clang++-14"  # Debian's, with libclang-rt-14-dev (make test's set-up installs both)
# optimised enough to run the tests quickly, not so much that the builds take long; -g for
# the reports' line numbers
OPT = ["-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g"]


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert res.returncode == 0, (
        f"{' '.join(map(str, cmd))}\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}"
    )
    return res


def _build(name: str, *options: str, targets: tuple[str, ...] = ()) -> Path:
    build = REPO / "build" / name
    _run(
        [
            shutil.which("cmake"),
            "-S",
            REPO,
            "-B",
            build,
            f"-DPython3_EXECUTABLE={sys.executable}",
            *OPT,
            *options,
        ]
    )
    extra = [a for t in targets for a in ("--target", t)]
    _run([shutil.which("cmake"), "--build", build, "-j2", *extra])
    return build


@pytest.fixture(scope="module")
def xnnpack_artifact(tmp_path_factory) -> Path:
    """The shipped digits classifier compiled for x86_64 with its layers in XNNPACK."""
    from edgecv.compile import CompileOptions, compile_model

    out = tmp_path_factory.mktemp("xnnpack") / "a"
    return compile_model(
        CompileOptions(model="mobilenet0.25_digits", kernels="xnnpack", out_dir=str(out))
    )


@pytest.fixture(scope="module")
def artifacts(small_artifact, yolo_artifact, xnnpack_artifact) -> str:
    return ":".join(str(a) for a in (small_artifact, yolo_artifact, xnnpack_artifact))


def _ctest(build: Path, env: dict[str, str]) -> str:
    out = _run([shutil.which("ctest"), "--output-on-failure"], cwd=build, env=env).stdout
    assert "100% tests passed" in out and "Not Run" not in out and "Skipped" not in out, out
    assert "concurrency" in out
    return out


def test_ctest_under_asan_ubsan(artifacts):
    build = _build("sanitize-address", "-DEDGECV_SANITIZE=address,undefined")
    env = dict(
        os.environ,
        EDGECV_TEST_ARTIFACTS=artifacts,
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
        UBSAN_OPTIONS="print_stacktrace=1",
    )
    _ctest(build, env)


def test_ctest_under_tsan(artifacts):
    build = _build("sanitize-thread", "-DEDGECV_SANITIZE=thread")
    # one thread per kernel call: OpenMP's and pthreadpool's hand-over of a parallel loop is in
    # their uninstrumented libraries, invisible to TSan, which would report every parallel loop
    # of edgecv's (winograd.cc, the epilogues) as racing with the thread that started it. The
    # threads under test are the callers'.
    env = dict(
        os.environ,
        EDGECV_TEST_ARTIFACTS=artifacts,
        EDGECV_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1",
    )
    _ctest(build, env)


@pytest.fixture(scope="module")
def fuzzers() -> Path:
    assert shutil.which(CLANG), f"{CLANG} is missing (Debian: clang-14 libclang-rt-14-dev)"
    return _build(
        "fuzz",
        f"-DCMAKE_CXX_COMPILER={shutil.which(CLANG)}",
        "-DEDGECV_SANITIZE=address,undefined",
        "-DEDGECV_BUILD_FUZZERS=ON",
        # the harnesses need the core only
        "-DEDGECV_WITH_DNNL=OFF",
        "-DEDGECV_WITH_XNNPACK=OFF",
        targets=tuple(f"fuzz_{h}" for h in HARNESSES),
    )


@pytest.mark.parametrize("harness", HARNESSES)
def test_fuzz(fuzzers, harness, tmp_path):
    seconds = int(os.environ.get("EDGECV_FUZZ_SECONDS", "25"))
    corpus = tmp_path / "corpus"  # what this run finds; the seeds stay as they are
    corpus.mkdir()
    dirs = [d for d in (FUZZ / "corpus" / harness, FUZZ / "regressions" / harness) if d.is_dir()]
    words = FUZZ / f"{harness}.dict"  # tokens the mutations would hardly hit byte by byte
    dictionary = [f"-dict={words}"] if words.is_file() else []
    res = subprocess.run(
        [
            fuzzers / "runtime_cpp" / "fuzz" / f"fuzz_{harness}",
            f"-max_total_time={seconds}",
            # no RSS limit: libFuzzer reads the process's peak RSS (ru_maxrss), which Linux
            # carries over fork and exec from this pytest process (GBs after the model tests:
            # every harness "ran out of memory" at once in a full CI run); allocations of
            # 2 GB or more still count as a bug, and ASan reports leaks
            "-rss_limit_mb=0",
            "-malloc_limit_mb=2048",
            "-timeout=10",
            "-max_len=4096",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            *dictionary,
            corpus,
            *dirs,
        ],
        capture_output=True,
        text=True,
    )
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("oom-*"))
    crashes += sorted(tmp_path.glob("timeout-*"))
    assert res.returncode == 0 and not crashes, (
        f"fuzz_{harness} found a bug; its input: {crashes}. Fix it, then keep the input in "
        f"{FUZZ / 'regressions' / harness}/ (ctest replays it)\n{res.stderr[-6000:]}"
    )
    runs = [line for line in res.stderr.splitlines() if "stat::number_of_executed_units" in line]
    assert runs and int(runs[0].split(":")[-1]) > 100, res.stderr[-2000:]
