"""Targets as data: every file validates, impossible combinations are refused before any work,
and the GPU-code inspection reads real fatbin layouts (no TVM, no MXNet, no CUDA)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from edgecv.devicecode import embedded_device_code
from edgecv.errors import EdgecvError, InvalidInputError, UnknownNameError
from edgecv.targets import (
    IMPLEMENTED_PRECISIONS,
    check_toolchain,
    get_target,
    list_targets,
    parse_target,
    resolve_target,
    targets_dir,
)

pytestmark = pytest.mark.unit


def edgecv(*args, env=None):
    exe = Path(sys.executable).parent / "edgecv"
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=120, env=env
    )


def test_every_target_file_loads_and_lists():
    names = {t.name for t in list_targets()}
    assert {"aarch64", "rpi4", "rpi5", "jetson-orin-cpu", "cuda", "jetson-orin", "x86_64"} <= names
    assert get_target("rpi4").tvm["mcpu"] == "cortex-a72"
    assert (
        get_target("rpi5").tvm["mcpu"] == "cortex-a76"
        and "+dotprod" in get_target("rpi5").tvm["mattr"]
    )
    assert "fp16" in get_target("rpi5").precisions and "fp16" not in get_target("rpi4").precisions
    cuda = get_target("cuda")
    sms = {a.name: a.sm for a in cuda.archs}
    assert sms["jetson-nano"] == "sm_53" and sms["jetson-xavier"] == "sm_72"
    assert sms["jetson-orin"] == "sm_87"
    assert {"sm_75", "sm_80", "sm_86", "sm_89", "sm_90"} <= set(sms)
    out = edgecv("targets")
    assert out.returncode == 0
    assert "rpi4" in out.stdout and "--arch jetson-orin" in out.stdout and "sm_87" in out.stdout


def test_resolved_targets():
    orin = resolve_target("cuda", "jetson-orin")
    assert orin.label == "cuda-jetson-orin" and orin.host_triple == "aarch64-linux-gnu"
    assert orin.tvm["arch"] == "sm_87" and orin.tvm["host"]["mcpu"] == "cortex-a78"
    assert resolve_target("cuda", "sm_87").arch == orin.arch  # an sm that names one GPU
    desktop = resolve_target("cuda", "sm_86")
    assert desktop.host.name == "x86_64" and desktop.tvm["host"]["mtriple"] == "x86_64-linux-gnu"
    assert orin.sms == ["sm_87"] and orin.ptx is None
    rpi = resolve_target("rpi4")
    assert rpi.arch is None and rpi.label == "rpi4" and not rpi.is_native
    assert rpi.manifest()["host_triple"] == "aarch64-linux-gnu"
    assert rpi.gpus == () and rpi.gpu_code is None and "sms" not in rpi.manifest()


def test_cuda_without_arch_is_every_desktop_gpu_plus_ptx():
    """--target cuda alone: one library with a cubin for each desktop/data-centre GPU and the
    PTX of the newest for GPUs after them; TVM generates the source for the oldest."""
    every = resolve_target("cuda")
    desktop = ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90"]
    assert every.label == "cuda" and every.arch is None and every.sms == desktop
    assert every.ptx == "sm_90" and every.host.name == "x86_64"
    assert every.gpu_code == {"sms": desktop, "ptx": "sm_90"}
    assert every.tvm["arch"] == "sm_75" and every.tvm["host"]["mtriple"] == "x86_64-linux-gnu"
    doc = every.manifest()
    assert doc["sms"] == desktop and doc["ptx"] == "sm_90" and "sm" not in doc
    narrowed = resolve_target("cuda", "sm_86", "int8")
    assert narrowed.sms == ["sm_86"] and narrowed.ptx is None and narrowed.label == "cuda-sm_86"
    assert narrowed.manifest()["sm"] == "sm_86" and narrowed.manifest()["sms"] == ["sm_86"]


def test_jetson_orin_is_a_target_of_its_own():
    orin = resolve_target("jetson-orin", None, "int8")
    assert orin.label == "jetson-orin" and orin.sms == ["sm_87"] and orin.ptx is None
    assert orin.host.name == "jetson-orin-cpu" and orin.host_triple == "aarch64-linux-gnu"
    assert orin.tvm["arch"] == "sm_87" and orin.tvm["host"]["mcpu"] == "cortex-a78"
    assert orin.linker == "aarch64-linux-gnu-g++" or os.uname().machine == "aarch64"
    assert resolve_target("jetson-orin", "sm_87", "fp16").sms == ["sm_87"]


@pytest.mark.parametrize(
    "args, error, message",
    [
        (("rpi4", "sm_87"), InvalidInputError, "--arch 'sm_87' only applies to GPU targets"),
        (("cuda", "sm_99"), UnknownNameError, "unknown --arch 'sm_99'"),
        (
            ("jetson-orin", "sm_86"),
            UnknownNameError,
            "unknown --arch 'sm_86' for target 'jetson-orin'",
        ),
        (("cuda", "jetson-orn"), UnknownNameError, "did you mean jetson-orin"),
        (("rpi", None), UnknownNameError, "did you mean rpi5, rpi4"),
        (("rpi4", None, "fp16"), InvalidInputError, "does not support precision 'fp16'"),
        (("x86_64", None, "fp16"), InvalidInputError, "does not support precision 'fp16'"),
        (("aarch64", None, "fp16"), InvalidInputError, "does not support precision 'fp16'"),
        (("rpi4", None, "bf16"), InvalidInputError, "unknown precision"),
    ],
)
def test_impossible_combinations_are_refused(args, error, message):
    with pytest.raises(error, match=message):
        resolve_target(*args)


def test_fp16_where_a_target_has_half_precision_arithmetic():
    """fp16 compiles for GPUs and for ARM cores with fullfp16 (rpi5, Jetson Orin's CPU);
    x86 (no fp16 arithmetic: 7x slower than fp32, measured), generic aarch64 and the
    Cortex-A72 of the rpi4 refuse it."""
    assert resolve_target("rpi5", None, "fp16").target.name == "rpi5"
    assert resolve_target("jetson-orin-cpu", None, "fp16").target.name == "jetson-orin-cpu"
    assert resolve_target("cuda", "sm_86", "fp16").arch.sm == "sm_86"
    for t in list_targets():
        fp16 = "fp16" in t.precisions
        assert fp16 == (t.name in ("rpi5", "jetson-orin-cpu", "cuda", "jetson-orin")), t.name
        if t.device == "cpu" and fp16:
            assert "+fullfp16" in t.tvm.get("mattr", []), t.name  # the codegen may use it


def test_int8_on_every_target():
    """int8 is built for every target (x86: oneDNN's integer kernels; ARM and CUDA: integer
    ops in TVM-generated code), with and without --arch."""
    assert "int8" in IMPLEMENTED_PRECISIONS
    for t in list_targets():
        assert "int8" in t.precisions, t.name
        assert resolve_target(t.name, None, "int8").target.name == t.name
        if t.archs:
            assert resolve_target(t.name, t.archs[0].name, "int8").arch == t.archs[0]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--target", "rpi4", "--arch", "sm_87"], 3, "only applies to GPU targets"),
        (["--target", "raspberrypi"], 2, "unknown target 'raspberrypi'"),
        (["--target", "cuda", "--arch", "sm_99"], 2, "unknown --arch 'sm_99'"),
        (["--target", "cuda", "--arch", "sm_99", "--int8"], 2, "unknown --arch 'sm_99'"),
        (["--target", "jetson-orin", "--arch", "sm_86"], 2, "unknown --arch 'sm_86'"),
        (["--target", "cuda", "--int8", "--fp16"], 2, "not allowed with argument"),
        (["--target", "rpi4", "--fp16"], 3, "does not support precision 'fp16'"),
        (["--fp16"], 3, "target 'x86_64' does not support precision 'fp16'"),
    ],
)
def test_cli_refuses_before_any_work(args, code, message, tmp_path):
    out = edgecv("compile", "resnet18_v1", *args, "--out", tmp_path / "art")
    assert out.returncode == code, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "art").exists() and "[1]" not in out.stderr  # no step started


def _fake_tools(tmp_path: Path, nvcc_archs: str | None) -> dict[str, str]:
    """PATH with only a fake nvcc (listing ``nvcc_archs``), without any cross compiler."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    if nvcc_archs is not None:
        nvcc = bin_dir / "nvcc"
        nvcc.write_text(f"#!/bin/sh\nprintf '{nvcc_archs}'\n")
        nvcc.chmod(0o755)
    return {**os.environ, "PATH": str(bin_dir)}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="cross compiler needed on x86-64 only")
def test_toolchain_checks(tmp_path, monkeypatch):
    env = _fake_tools(tmp_path, "sm_75\\nsm_87\\nsm_90\\n")
    monkeypatch.setenv("PATH", env["PATH"])
    with pytest.raises(EdgecvError, match="cross compiler aarch64-linux-gnu-g.. is not installed"):
        check_toolchain(resolve_target("rpi4"))
    with pytest.raises(EdgecvError, match="needs kernels for sm_53, which this nvcc"):
        check_toolchain(resolve_target("cuda", "jetson-nano"))
    check_toolchain(resolve_target("cuda", "sm_75"))  # x86 host: no cross compiler needed
    with pytest.raises(EdgecvError, match="target cuda needs kernels for sm_80, sm_86, sm_89"):
        check_toolchain(resolve_target("cuda"))  # every desktop arch, each checked
    with pytest.raises(EdgecvError, match="cross compiler aarch64-linux-gnu-g.. is not installed"):
        check_toolchain(resolve_target("jetson-orin"))
    check_toolchain(resolve_target("x86_64"))
    out = edgecv("compile", "resnet18_v1", "--target", "cuda", "--arch", "jetson-xavier", env=env)
    assert out.returncode == 1 and "sm_72" in out.stderr and "Traceback" not in out.stderr
    monkeypatch.setenv("PATH", _fake_tools(tmp_path / "none", None)["PATH"])
    with pytest.raises(EdgecvError, match="needs nvcc"):
        check_toolchain(resolve_target("cuda", "sm_75"))


def test_bad_target_files(tmp_path):
    cuda = (targets_dir() / "cuda.toml").read_text()
    bad = tmp_path / "cuda.toml"
    bad.write_text(cuda.replace('sm = "sm_87"', 'sm = "ampere"'))
    with pytest.raises(InvalidInputError, match="sm 'ampere' is not of the form"):
        parse_target(bad)
    bad.write_text(cuda.replace('kind = "cuda"', 'kind = "llvm"'))
    with pytest.raises(InvalidInputError, match="tvm.kind must be one of"):
        parse_target(bad)
    bad.write_text(cuda.split("[archs.")[0])
    with pytest.raises(InvalidInputError, match="missing key 'archs'"):
        parse_target(bad)
    bad.write_text(cuda.replace('default_archs = ["sm_75"', 'default_archs = ["sm_42"'))
    with pytest.raises(InvalidInputError, match=r"default_archs \['sm_42'\] are not listed"):
        parse_target(bad)
    bad.write_text(
        cuda.replace('default_archs = ["sm_75"', 'default_archs = ["jetson-orin", "sm_75"')
    )
    with pytest.raises(InvalidInputError, match="host code on different CPUs"):
        parse_target(bad)
    bad.write_text(cuda.replace('ptx = "sm_90"', 'ptx = "compute_90"'))
    with pytest.raises(InvalidInputError, match="ptx 'compute_90' is not of the form"):
        parse_target(bad)
    rpi = tmp_path / "rpi4.toml"
    rpi.write_text((targets_dir() / "rpi4.toml").read_text() + '\n[archs.x]\nsm = "sm_87"\n')
    with pytest.raises(InvalidInputError, match="cpu target has no 'archs'"):
        parse_target(rpi)


# --- GPU code inspection -------------------------------------------------------------------


def _cubin(sm: int, abi: int = 8) -> bytes:
    """A minimal 64-bit CUDA ELF header: e_machine 190, the sm in e_flags as that ABI puts it."""
    flags = (sm << 8) | 0x06000004 if abi >= 8 else sm | 0x00050500
    head = b"\x7fELF" + bytes([2, 1, 1, 0x41 if abi >= 8 else 0x33, abi]) + bytes(7)
    head += struct.pack("<HHI", 2, 190, 1) + bytes(24) + struct.pack("<I", flags)
    return head + bytes(64 - len(head)) + b"kernels"


def _fatbin(entries: list[tuple[int, int, bytes]]) -> bytes:
    body = b""
    for kind, sm, payload in entries:
        header = struct.pack("<HHIQII", kind, 0x0101, 64, len(payload), 0, 0)
        header += struct.pack("<II", 0x00010008, sm) + bytes(64 - 32)
        body += header + payload
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def test_device_code_from_fatbins(tmp_path):
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"\x7fELF host code" + _fatbin([(2, 87, _cubin(87))]) + b"tail")
    (code,) = embedded_device_code(lib)
    assert (code.kind, code.arch, code.checked) == ("cubin", "sm_87", "fatbin header+elf")

    lib.write_bytes(_fatbin([(2, 75, _cubin(75, abi=7)), (1, 75, b".target sm_75")]))
    assert [(c.kind, c.arch) for c in embedded_device_code(lib)] == [
        ("cubin", "sm_75"),
        ("ptx", "sm_75"),
    ]
    lib.write_bytes(_fatbin([(2, 87, _cubin(86))]))  # header and ELF disagree
    with pytest.raises(ValueError, match="sm_87, its ELF says sm_86"):
        embedded_device_code(lib)
    lib.write_bytes(b'extern "C" __global__ void k() {}')  # CUDA source: no device code
    assert embedded_device_code(lib) == []
    lib.write_bytes(b"//\n.version 6.0\n.target sm_53\n.address_size 64\n")
    assert [(c.kind, c.arch) for c in embedded_device_code(lib)] == [("ptx", "sm_53")]
