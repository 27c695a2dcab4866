"""The runtime-only wheels and the emulated arm64 device, for the tests that run them
(tests/test_device_wheel.py, tests/test_board_bench.py).

The aarch64 device is Debian's arm64 CPython 3.11 (unpacked into build/python/aarch64 by
`make wheel-deps`) under qemu-aarch64, importing from one folder into which NumPy's aarch64
wheel and the aarch64 runtime wheel are unpacked (what ``pip install --target`` does, minus
pip). The wheels come from packaging/runtime/build_wheel.py (incrementally, in
build/runtime-wheel) or from $EDGECV_RUNTIME_WHEELS (a folder holding them, e.g. `make wheels`'
dist/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO

CROSS_PYTHON = REPO / "build" / "python" / "aarch64"
NUMPY_WHEELS = REPO / "build" / "python" / "numpy-wheels"
BUILD_WHEEL = REPO / "packaging" / "runtime" / "build_wheel.py"


def run_checked(cmd: list[object], **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` (text output captured); fail with its command line and output unless it
    exits 0."""
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert res.returncode == 0, (
        f"{' '.join(map(str, cmd))}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    )
    return res


def runtime_wheels(
    scratch: Path, arches: tuple[str, ...] = ("x86_64", "aarch64")
) -> dict[str, Path]:
    """One runtime wheel per machine in ``arches``: from $EDGECV_RUNTIME_WHEELS, else built
    into ``scratch``."""
    given = os.environ.get("EDGECV_RUNTIME_WHEELS")
    out = Path(given) if given else scratch
    if not given:
        args = [a for arch in arches for a in ("--arch", arch)]
        run_checked([sys.executable, BUILD_WHEEL, *args, "--out", out])
    found = {
        a: sorted(out.glob(f"edgecv_runtime-*-cp311-cp311-manylinux_*_{a}.whl")) for a in arches
    }
    assert all(len(v) == 1 for v in found.values()), (
        f"expected one wheel per machine in {out}: {found}"
    )
    return {a: v[0] for a, v in found.items()}


def numpy_wheel(arch: str) -> Path:
    """NumPy's wheel for ``arch`` (x86_64 or aarch64), downloaded by `make wheel-deps`."""
    wheel = next(NUMPY_WHEELS.glob(f"numpy-*{arch}.whl"), None)
    assert wheel, f"no {arch} NumPy wheel in {NUMPY_WHEELS}: run `make wheel-deps`"
    return wheel


def arm_site(runtime_wheel: Path, directory: Path) -> Path:
    """NumPy's aarch64 wheel and ``runtime_wheel`` unpacked into ``directory``: the folder
    the emulated arm64 Python imports from (put it on its sys.path or PYTHONPATH)."""
    for wheel in (numpy_wheel("aarch64"), runtime_wheel):
        zipfile.ZipFile(wheel).extractall(directory)
    for so in directory.rglob("*.so*"):  # zipfile drops the mode bits
        so.chmod(0o755)
    return directory


def arm_python() -> list[object]:
    """The command that starts Debian's arm64 CPython 3.11 under qemu-aarch64."""
    python = CROSS_PYTHON / "usr" / "bin" / "python3.11"
    assert python.is_file(), f"no arm64 CPython in {CROSS_PYTHON}: run `make wheel-deps`"
    assert shutil.which("qemu-aarch64"), "qemu-aarch64 not installed: run `make cross-tools`"
    return ["qemu-aarch64", "-L", CROSS_PYTHON, python]


def device_env(**extra: str) -> dict[str, str]:
    """This process's environment without the variables that would point a device's Python
    at this machine's libraries or packages, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME")
    }
    return {**env, **extra}
