"""The user's own command, `edgecv compile yolo3_darknet53_coco --target cuda --int8`, built
here (no GPU, nvcc only) and inspected: one artifact with machine code for every desktop GPU
architecture plus PTX, calibrated on the built-in photos without --calib-data, whose calibrated
layers are integer operators in the generated CUDA kernels; `--target jetson-orin`; bad input.

Nothing here runs on a GPU: the kernels are compiled and read, never executed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgecv import calibration
from edgecv.artifact import read_manifest
from edgecv.devicecode import embedded_device_code, embeds_cuda_source

pytestmark = [
    pytest.mark.targets,
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA toolkit) is needed"),
]

DESKTOP = ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90"]
SIZE = 64  # the user's command at a small input (same layers and kernels, faster to build)
EM_X86_64, EM_AARCH64 = 62, 183
WARNING = "warning: no --calib-data: calibrating int8 on edgecv's"
# a CUDA kernel as TVM prints it: extern "C" __global__ void __launch_bounds__(N) name(params)
KERNEL = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(([^)]*)\)')
INT8_PARAM = re.compile(r"\b(?:u?int8_t|signed char|unsigned char|char)\*")


def edgecv(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "edgecv"
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, **(env or {})},
    )


def _elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(head[18:20], "little")


def _kernels(source_dir: Path) -> dict[str, str]:
    """Every generated CUDA kernel: name -> parameter list."""
    found: dict[str, str] = {}
    for cu in sorted(source_dir.glob("kernels-*.cu")):
        found.update(KERNEL.findall(cu.read_text()))
    return found


@pytest.fixture(scope="module")
def users_command(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cuda-int8")
    source = tmp / "cuda-source"
    out = edgecv(
        "compile", "yolo3_darknet53_coco", "--target", "cuda", "--int8",
        "--input-size", SIZE, "--out", tmp / "art",
        env={"EDGECV_CUDA_SOURCE_DIR": str(source)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp / "art", out, source


def test_users_command_writes_a_cuda_int8_artifact(users_command):
    art, out, _ = users_command
    assert out.stdout.strip() == str(art) and "Traceback" not in out.stderr
    # no --calib-data: the built-in photos, said in one line
    warnings = [line for line in out.stderr.splitlines() if line.startswith(WARNING)]
    assert len(warnings) == 1 and "--calib-data DIR" in warnings[0], out.stderr
    doc = read_manifest(art)
    assert doc["precision"] == "int8" and doc["kernels"] == []
    target = doc["target"]
    assert target["name"] == "cuda" and target["device"] == "cuda"
    assert target["sms"] == DESKTOP and target["ptx"] == "sm_90" and "sm" not in target
    assert target["host_triple"] == "x86_64-linux-gnu"
    q = doc["report"]["int8"]
    assert q["calibration_set"] == "built-in" and q["calibration_data"].startswith("built-in")
    assert q["calibration_images"] == len(calibration.builtin_images())
    assert q["engine"] == "tvm (integer Relax operators)" and q["layers_int8"] > 60
    assert (art / "calibration.json").is_file()
    # machine code for each desktop architecture, PTX for newer GPUs, host code for x86-64
    library = art / "model.so"
    assert _elf_machine(library) == EM_X86_64 and not embeds_cuda_source(library)
    code = {(c.kind, c.arch) for c in embedded_device_code(library)}
    assert code == {("cubin", sm) for sm in DESKTOP} | {("ptx", "sm_90")}, code
    assert sorted(set(doc["report"]["device_code"])) == sorted(f"{a} {k}" for k, a in code)


def test_calibrated_layers_are_integer_ops_in_the_cuda_kernels(users_command):
    """Every convolution kernel reads int8/uint8 data unless its layer was kept float (the
    recipe's output convolutions): no float convolution behind a dequantize."""
    art, _, source = users_command
    kernels = _kernels(source)
    conv = {name: params for name, params in kernels.items() if "conv2d" in name}
    integer = [name for name, params in conv.items() if INT8_PARAM.search(params)]
    floats = [name for name in conv if name not in integer]
    layers = read_manifest(art)["report"]["offloaded"]["layers"]
    float_convs = [e for e in layers if e["precision"] != "int8" and e["kind"] == "conv"]
    assert integer, sorted(conv)
    assert len(floats) <= len(float_convs), (floats, float_convs)
    text = "".join(cu.read_text() for cu in source.glob("kernels-*.cu"))
    # int8 x int8 products accumulated in 32-bit integers (nvcc turns them into dp4a)
    assert re.search(r"\(int\)\(v_\w*\.x\)", text), "no int8 -> int32 widening in the kernels"
    # the PTX inside the library (for newer GPUs) holds dp4a: 4 int8 products per instruction
    assert b"dp4a.s32.s32" in (art / "model.so").read_bytes() or _ptx_has_dp4a(source)


def _ptx_has_dp4a(source: Path) -> bool:
    """The PTX nvcc makes of the generated source (when the library's is compressed)."""
    for cu in source.glob("kernels-*.cu"):
        ptx = cu.with_suffix(".ptx")
        subprocess.run(["nvcc", "--ptx", "-arch=sm_90", str(cu), "-o", str(ptx)], check=True)
        if "dp4a.s32.s32" in ptx.read_text():
            return True
    return False


@pytest.fixture(scope="module")
def orin(tmp_path_factory):
    if shutil.which("aarch64-linux-gnu-g++") is None and os.uname().machine != "aarch64":
        pytest.skip("the aarch64 cross compiler (g++-aarch64-linux-gnu) is not installed")
    tmp = tmp_path_factory.mktemp("orin")
    arts = {}
    for flag in ("--int8", "--fp16"):
        out = edgecv(
            "compile", "mobilenet0.25_digits", "--target", "jetson-orin", flag,
            "--out", tmp / flag[2:],
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        arts[flag[2:]] = tmp / flag[2:]
    return arts


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_jetson_orin_builds(orin, precision):
    art = orin[precision]
    doc = read_manifest(art)
    assert doc["precision"] == precision
    assert doc["target"]["name"] == "jetson-orin" and doc["target"]["sms"] == ["sm_87"]
    assert doc["target"]["host_triple"] == "aarch64-linux-gnu" and doc["target"]["ptx"] is None
    library = art / "model.so"
    assert _elf_machine(library) == EM_AARCH64  # host code for the board's Cortex-A78AE
    assert {(c.kind, c.arch) for c in embedded_device_code(library)} == {("cubin", "sm_87")}
    if precision == "int8":
        assert doc["report"]["int8"]["calibration_set"] == "built-in"


def test_bad_calibration_data_exits_3(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = edgecv(
        "compile", "mobilenet0.25_digits", "--target", "cuda", "--int8",
        "--calib-data", empty, "--out", tmp_path / "a",
    )  # fmt: skip
    assert out.returncode == 3 and "no images in" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "a").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "photo.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = edgecv(
        "compile", "mobilenet0.25_digits", "--target", "cuda", "--arch", "sm_86", "--int8",
        "--calib-data", broken, "--out", tmp_path / "b",
    )  # fmt: skip
    assert out.returncode == 3 and "photo.jpg" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "b").exists()
