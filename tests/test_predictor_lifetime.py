"""A predictor opened, run and closed again and again (an unattended device reloading its
model) leaves the process the size it was: nothing grows per open."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.cpp

# one process: its resident size after `warmup` open/run/close cycles and after `cycles` more
_CYCLES = textwrap.dedent(
    """
    import gc, sys
    import numpy as np
    from edgecv.runtime import Predictor

    def rss_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1])

    artifact, warmup, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    side = Predictor(artifact).input_shape[-1]
    image = np.random.RandomState(0).randint(0, 256, (side, side, 3), dtype=np.uint8)
    def cycles(n):
        for _ in range(n):
            p = Predictor(artifact)
            p.run(image)
            del p
        gc.collect()
    cycles(warmup)
    before = rss_kb()
    cycles(n)
    print(before, rss_kb())
    """
)


def _growth_kb(artifact: Path, warmup: int, cycles: int, tmp_path: Path) -> int:
    script = tmp_path / "cycles.py"
    script.write_text(_CYCLES)
    out = subprocess.run(
        [sys.executable, "-P", str(script), str(artifact), str(warmup), str(cycles)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    return after - before


@pytest.fixture(scope="module")
def digits_artifact(tmp_path_factory) -> Path:
    """The shipped digits classifier (depthwise and 1x1 layers), compiled for x86_64."""
    from edgecv.compile import CompileOptions, compile_model

    out = tmp_path_factory.mktemp("digits") / "art"
    return compile_model(CompileOptions(model="mobilenet0.25_digits", out_dir=str(out)))


def test_reopening_does_not_grow_the_process(digits_artifact, tmp_path):
    """160 open/run/close cycles after 40 of warm-up grow the process by less than 384 KB (the
    unbounded kernel-layer log grew it by ~5.6 KB per open: ~900 KB here)."""
    grown = _growth_kb(digits_artifact, 40, 160, tmp_path)
    assert grown < 384, f"the process grew by {grown} KB over 160 cycles"
