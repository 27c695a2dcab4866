"""`import edgecv` makes oneDNN's OpenMP threads sleep between parallel regions
(OMP_WAIT_POLICY=PASSIVE) unless the user chose otherwise: after an inference, an idle
process uses no CPU, where libgomp's spinning threads would (BENCHMARKS.md "OpenMP
waiting" for why)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cpp

_CLEAN = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}

# run an artifact a few times, then sleep: the CPU time the process used while it slept
_IDLE_CPU = """
import sys, time
import numpy as np
import edgecv
from edgecv.runtime import Predictor
p = Predictor(sys.argv[1])
image = np.zeros((p.input_shape[-1], p.input_shape[-1], 3), np.uint8)
for _ in range(3):
    p.run(image)
t0 = time.process_time()
time.sleep(0.5)
print(time.process_time() - t0)
"""


def _python(code: str, *args: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**_CLEAN, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.unit
def test_import_sets_passive_unless_the_user_chose():
    show = "import os, edgecv; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert _python(show) == "PASSIVE"
    assert _python(show, OMP_WAIT_POLICY="active") == "active"
    assert _python(show, GOMP_SPINCOUNT="300000") == "None"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="oneDNN runs one thread on one CPU")
def test_oneDNN_threads_sleep_after_an_inference(small_artifact):
    passive = float(_python(_IDLE_CPU, str(small_artifact)))
    spinning = float(_python(_IDLE_CPU, str(small_artifact), OMP_WAIT_POLICY="ACTIVE"))
    assert passive < 0.1, f"{passive:.2f} s of CPU in 0.5 s of idle time with PASSIVE"
    assert spinning > 0.2, f"ACTIVE spun for only {spinning:.2f} s: the check cannot tell"
