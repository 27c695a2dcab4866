"""C++ unit tests (ctest) and the example device app, built against the installed CMake package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgecv.runtime import Predictor, read_image

from conftest import REPO, SAMPLE_IMAGE

pytestmark = pytest.mark.cpp


def _run(cmd, **kw):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert res.returncode == 0, (
        f"{' '.join(map(str, cmd))}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    return res


@pytest.fixture(scope="module")
def installed_prefix(tmp_path_factory):
    build = tmp_path_factory.mktemp("cpp-build")
    prefix = tmp_path_factory.mktemp("cpp-prefix")
    cmake = shutil.which("cmake")
    _run(
        [
            cmake,
            "-S",
            REPO,
            "-B",
            build,
            f"-DPython3_EXECUTABLE={sys.executable}",
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            "-DEDGECV_BUILD_TESTS=ON",
        ]
    )
    _run([cmake, "--build", build, "-j2"])
    _run([cmake, "--install", build])
    return build, prefix


def test_ctest(installed_prefix):
    build, _ = installed_prefix
    out = _run([shutil.which("ctest"), "--output-on-failure"], cwd=build)
    assert "100% tests passed" in out.stdout


def test_example_app_against_installed_package(installed_prefix, small_artifact, tmp_path):
    _, prefix = installed_prefix
    cmake = shutil.which("cmake")
    app_build = tmp_path / "app"
    _run(
        [
            cmake,
            "-S",
            REPO / "runtime_cpp" / "examples" / "classify",
            "-B",
            app_build,
            f"-DCMAKE_PREFIX_PATH={prefix}",
        ]
    )
    _run([cmake, "--build", app_build])
    exe = app_build / "edgecv-classify"

    bgr = read_image(SAMPLE_IMAGE)
    ppm = tmp_path / "cat.ppm"
    rgb = bgr[:, :, ::-1]
    ppm.write_bytes(f"P6\n# sample\n{rgb.shape[1]} {rgb.shape[0]}\n255\n".encode() + rgb.tobytes())
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = _run([exe, small_artifact, ppm, "5"], env=env)
    rows = [line.split("\t") for line in out.stdout.strip().splitlines()]
    expected = Predictor(small_artifact).run(bgr, top_k=5).top
    assert [int(r[0]) for r in rows] == [c.index for c in expected]
    np.testing.assert_allclose([float(r[1]) for r in rows], [c.score for c in expected], rtol=1e-5)

    bad = _run_fail([exe, small_artifact, SAMPLE_IMAGE])  # a JPEG is not a PPM
    assert bad.returncode == 3 and "not an 8-bit binary PPM" in bad.stderr


def _run_fail(cmd):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    assert res.returncode != 0
    return res
