"""Compilation targets, defined as TOML data files under ``targets/`` and validated on load.

A CPU target names its LLVM target, the host triple its artifacts run on and the C++ cross
compiler that links them when they are built on another machine. A GPU target (``cuda``,
``jetson-orin``) lists the GPU architectures it can be compiled for; without ``--arch`` one
artifact carries machine code for each of its default architectures (``default_archs``,
all of them when the file names none) plus PTX for newer GPUs (``ptx``), and ``--arch``
narrows it to one. Each runs its host code on a CPU target named by the file.
:func:`resolve_target` turns (target, arch, precision) into what the compiler needs, or
refuses an impossible combination before any work.
"""

from __future__ import annotations

import difflib
import platform
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import EdgecvError, InvalidInputError, UnknownNameError
from .registry import Registry

PRECISIONS = ("fp32", "fp16", "int8")
# what `compile` builds today, whatever a target supports
IMPLEMENTED_PRECISIONS = ("fp32", "fp16", "int8")
TVM_KINDS = {"cpu": ("llvm",), "cuda": ("cuda",)}  # device → TVM target kinds
DEVICES = tuple(TVM_KINDS)
_SM = re.compile(r"sm_\d{2,3}[a-z]?")


@dataclass(frozen=True)
class GpuArch:
    """One GPU architecture of a GPU target, chosen with ``--arch``."""

    name: str
    sm: str  # "sm_87"
    description: str
    host: str | None  # CPU target of the host code; None: the GPU target's default


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    device: str
    host_triple: str  # CPU targets; a GPU target's comes from its host CPU target
    precisions: tuple[str, ...]
    tvm: dict[str, Any]  # the TVM target as a JSON-style dict
    source: Path
    cross_compiler: str | None = None  # CPU targets: C++ compiler that links for host_triple
    host: str | None = None  # GPU targets: default host CPU target
    archs: tuple[GpuArch, ...] = ()  # GPU targets
    # GPU targets: the archs (names) built without --arch (empty: all of ``archs``), and the
    # sm whose PTX is embedded too, which the driver compiles for GPUs newer than all of them
    default_archs: tuple[str, ...] = ()
    ptx: str | None = None
    kernels: tuple[str, ...] = ()  # kernel libraries layers can be offloaded to (first: default)
    # bits of int8 weights oneDNN's kernels may compute with on the CPUs of this target: 8 with
    # VNNI, 7 without (see the runtime's Int8WeightBits); the int8 gate measures each
    int8_weight_bits: tuple[int, ...] = (8,)
    # CPU features the target's machine code needs (names as in /proc/cpuinfo): the runtime
    # refuses an artifact on a CPU without them instead of dying of an illegal instruction
    cpu_features: tuple[str, ...] = ()

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise InvalidInputError(
                f"target {self.name!r} does not support precision {precision!r} "
                f"(supported: {', '.join(self.precisions)})"
            )

    def arch(self, name: str) -> GpuArch:
        """The architecture called ``name``, or the only one whose sm is ``name``."""
        for candidates in (
            [a for a in self.archs if a.name == name],
            [a for a in self.archs if a.sm == name],
        ):
            if len(candidates) == 1:
                return candidates[0]
        names = [a.name for a in self.archs]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown --arch {name!r} for target {self.name!r}{hint} (one of: {', '.join(names)})"
        )


@dataclass(frozen=True)
class ResolvedTarget:
    """A target with its GPU architectures (if any) and host CPU target, ready to compile for."""

    target: Target
    arch: GpuArch | None  # --arch: the one GPU asked for (None: a CPU target, or all defaults)
    host: Target  # the CPU target that runs the host code (the target itself for CPU targets)
    gpus: tuple[GpuArch, ...] = ()  # GPU targets: machine code is built for each of these
    ptx: str | None = None  # GPU targets: sm_XY whose PTX is embedded too (for newer GPUs)

    @property
    def label(self) -> str:
        """The name used in artifact directories: ``rpi4``, ``cuda``, ``cuda-sm_86``."""
        return self.target.name if self.arch is None else f"{self.target.name}-{self.arch.name}"

    @property
    def host_triple(self) -> str:
        return self.host.host_triple

    @property
    def sms(self) -> list[str]:
        """The GPU architectures with machine code in the library, oldest first."""
        return sorted({g.sm for g in self.gpus}, key=_sm_number)

    @property
    def gpu_code(self) -> dict[str, Any] | None:
        """What nvcc builds (None: a CPU target): a cubin per sm, and PTX of ``ptx``."""
        return {"sms": self.sms, "ptx": self.ptx} if self.gpus else None

    @property
    def tvm(self) -> dict[str, Any]:
        if not self.gpus:
            return dict(self.target.tvm)
        # TVM generates one CUDA source for the oldest architecture (valid on every newer one);
        # nvcc compiles it for each (tvm_api.build)
        return {**self.target.tvm, "arch": self.sms[0], "host": dict(self.host.tvm)}

    @property
    def is_native(self) -> bool:
        """Whether artifacts for this target run on this machine's CPU (and device)."""
        return (
            self.target.device == "cpu"
            and _same_cpu(self.host_triple, platform.machine())
            and not self.lacking_cpu_features()
        )

    def lacking_cpu_features(self) -> list[str]:
        """The CPU features the target's host code needs that this CPU lacks (or that the
        runtime cannot check here); empty on another architecture, where nothing runs."""
        if not _same_cpu(self.host_triple, platform.machine()):
            return []
        from . import _runtime

        return [f for f in self.host.cpu_features if _runtime.cpu_has(f) is not True]

    @property
    def linker(self) -> str | None:
        """The C++ compiler that links the library; None: TVM's default (the native one)."""
        if _same_cpu(self.host_triple, platform.machine()):
            return None
        return self.host.cross_compiler

    def manifest(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.target.name,
            "device": self.target.device,
            "host_triple": self.host_triple,
            "cpu_features": list(self.host.cpu_features),
            "tvm": self.tvm,
        }
        if self.gpus:
            # sms: a cubin for each; ptx: PTX the driver compiles for a newer GPU (the runtime
            # refuses a GPU that none of them runs on); sm: the one GPU of --arch
            doc.update(sms=self.sms, ptx=self.ptx, host=self.host.name)
        if self.arch is not None:
            doc.update(arch=self.arch.name, sm=self.arch.sm)
        return doc


def _sm_number(sm: str) -> int:
    return int(re.sub(r"\D", "", sm))


def _same_cpu(triple: str, machine: str) -> bool:
    aliases = {"amd64": "x86_64", "arm64": "aarch64"}
    return triple.split("-")[0] == aliases.get(machine.lower(), machine.lower())


def targets_dir() -> Path:
    """Installed wheels carry the files in ``edgecv/targets``; a checkout has ``targets/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "targets", here.parent / "targets"):
        if candidate.is_dir():
            return candidate
    raise InvalidInputError(f"no targets directory next to {here}")


def _require(data: dict[str, Any], key: str, kind: type, path: Path | str) -> Any:
    if key not in data:
        raise InvalidInputError(f"{path}: missing key {key!r}")
    if not isinstance(data[key], kind):
        raise InvalidInputError(f"{path}: {key!r} must be a {kind.__name__}")
    return data[key]


def _optional(data: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    return _require(data, key, kind, path) if key in data else None


def _parse_archs(data: dict[str, Any], path: Path) -> tuple[GpuArch, ...]:
    archs = []
    for name, entry in _require(data, "archs", dict, path).items():
        where = f"{path}: archs.{name}"
        if not isinstance(entry, dict):
            raise InvalidInputError(f"{where} must be a table")
        sm = _require(entry, "sm", str, where)
        if not _SM.fullmatch(sm):
            raise InvalidInputError(f"{where}: sm {sm!r} is not of the form sm_XY")
        archs.append(
            GpuArch(name, sm, _require(entry, "description", str, where), entry.get("host"))
        )
    if not archs:
        raise InvalidInputError(f"{path}: a {data['device']} target lists at least one arch")
    return tuple(archs)


def _parse_defaults(
    data: dict[str, Any], archs: tuple[GpuArch, ...], path: Path
) -> tuple[tuple[str, ...], str | None]:
    defaults = tuple(_optional(data, "default_archs", list, path) or ())
    names = {a.name for a in archs}
    unknown = [d for d in defaults if d not in names]
    if unknown:
        raise InvalidInputError(f"{path}: default_archs {unknown} are not listed under archs")
    chosen = [a for a in archs if a.name in defaults] if defaults else list(archs)
    if len({a.host for a in chosen}) != 1:
        raise InvalidInputError(
            f"{path}: the default archs run their host code on different CPUs: list "
            "default_archs that share one host"
        )
    ptx = _optional(data, "ptx", str, path)
    if ptx is not None and not _SM.fullmatch(ptx):
        raise InvalidInputError(f"{path}: ptx {ptx!r} is not of the form sm_XY")
    return defaults, ptx


def parse_target(path: Path) -> Target:
    """Read and validate one target file (references to other targets are checked by
    :func:`target_registry`)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidInputError(f"{path}: {err}") from None
    name = _require(data, "name", str, path)
    if name != path.stem:
        raise InvalidInputError(f"{path}: name {name!r} must match the file name")
    device = _require(data, "device", str, path)
    if device not in DEVICES:
        raise InvalidInputError(f"{path}: device {device!r} is not one of {DEVICES}")
    precisions = tuple(_require(data, "precisions", list, path))
    unknown = [p for p in precisions if p not in PRECISIONS]
    if not precisions or unknown:
        raise InvalidInputError(f"{path}: precisions must be a non-empty subset of {PRECISIONS}")
    tvm = dict(_require(data, "tvm", dict, path))
    if tvm.get("kind") not in TVM_KINDS[device]:
        raise InvalidInputError(
            f"{path}: tvm.kind must be one of {TVM_KINDS[device]} for a {device} target"
        )
    common = {
        "name": name,
        "description": _require(data, "description", str, path),
        "device": device,
        "precisions": precisions,
        "tvm": tvm,
        "source": path,
    }
    if device == "cpu":
        if "archs" in data or "host" in data:
            raise InvalidInputError(f"{path}: a cpu target has no 'archs' or 'host'")
        return Target(
            **common,
            host_triple=_require(data, "host_triple", str, path),
            cross_compiler=_optional(data, "cross_compiler", str, path),
            kernels=_parse_kernels(data, path),
            int8_weight_bits=_parse_weight_bits(data, path),
            cpu_features=tuple(_optional(data, "cpu_features", list, path) or ()),
        )
    archs = _parse_archs(data, path)
    defaults, ptx = _parse_defaults(data, archs, path)
    return Target(
        **common,
        host_triple="",
        host=_require(data, "host", str, path),
        archs=archs,
        default_archs=defaults,
        ptx=ptx,
    )


# the kernel libraries, and what to install (Debian packages) for the edgecv runtime to be
# built with each
KERNEL_PACKAGES = {
    "dnnl": "oneDNN: libdnnl-dev",
    "xnnpack": "XNNPACK: libxnnpack-dev libpthreadpool-dev",
}
KERNEL_LIBRARIES = tuple(KERNEL_PACKAGES)
# the libraries whose kernels have int8 versions (the others' targets get int8 as integer
# ops in TVM-generated code)
INT8_KERNEL_LIBRARIES = ("dnnl", "xnnpack")


def _parse_kernels(data: dict[str, Any], path: Path) -> tuple[str, ...]:
    kernels = tuple(_optional(data, "kernels", list, path) or ())
    unknown = [k for k in kernels if k not in KERNEL_LIBRARIES]
    if unknown:
        raise InvalidInputError(
            f"{path}: unknown kernel libraries {unknown} (known: {', '.join(KERNEL_LIBRARIES)})"
        )
    return kernels


def _parse_weight_bits(data: dict[str, Any], path: Path) -> tuple[int, ...]:
    bits = tuple(_optional(data, "int8_weight_bits", list, path) or (8,))
    if not bits or any(b not in (7, 8) for b in bits) or len(set(bits)) != len(bits):
        raise InvalidInputError(f"{path}: int8_weight_bits must list 8 and/or 7, each once")
    return bits


def _check_references(registry: Registry[Target]) -> None:
    for t in registry:
        for host in [t.host, *(a.host for a in t.archs)]:
            if host is None:
                continue
            if host not in registry or registry.get(host).device != "cpu":
                raise InvalidInputError(f"{t.source}: host {host!r} is not a cpu target")


@cache
def target_registry() -> Registry[Target]:
    registry: Registry[Target] = Registry("target", "edgecv targets")
    for path in sorted(targets_dir().glob("*.toml")):
        registry.add(path.stem, parse_target(path))
    _check_references(registry)
    return registry


def get_target(name: str) -> Target:
    return target_registry().get(name)


def list_targets() -> list[Target]:
    return list(target_registry())


def resolve_target(name: str, arch: str | None = None, precision: str = "fp32") -> ResolvedTarget:
    """Check a (target, --arch, precision) combination; no compiler or toolchain involved.

    Raises UnknownNameError for an unknown target or arch, InvalidInputError for a
    combination that cannot be built.
    """
    target = get_target(name)
    if precision not in PRECISIONS:
        raise InvalidInputError(f"unknown precision {precision!r} (one of {', '.join(PRECISIONS)})")
    if precision not in target.precisions and precision not in IMPLEMENTED_PRECISIONS:
        raise InvalidInputError(
            f"target {target.name!r} does not support precision {precision!r} (supported: "
            f"{', '.join(target.precisions)}); edgecv does not compile {precision} for any "
            "target yet"
        )
    target.check_precision(precision)
    if precision not in IMPLEMENTED_PRECISIONS:
        raise InvalidInputError(
            f"target {target.name!r} supports {precision}, but edgecv does not compile "
            f"{precision} yet (only {', '.join(IMPLEMENTED_PRECISIONS)})"
        )
    if not target.archs:
        if arch is not None:
            raise InvalidInputError(
                f"target {target.name!r} is a {target.device} target: --arch {arch!r} only "
                f"applies to GPU targets ({', '.join(t.name for t in list_targets() if t.archs)})"
            )
        return ResolvedTarget(target, None, target)
    if arch is None:  # every default architecture in one library, plus PTX for newer GPUs
        gpus = tuple(
            a for a in target.archs if not target.default_archs or a.name in target.default_archs
        )
        host = get_target(gpus[0].host or target.host or "")
        return ResolvedTarget(target, None, host, gpus, target.ptx)
    gpu = target.arch(arch)
    return ResolvedTarget(target, gpu, get_target(gpu.host or target.host or ""), (gpu,))


def nvcc_architectures(nvcc: str) -> list[str]:
    """The real architectures (sm_XY) this nvcc can compile for."""
    try:
        out = subprocess.run(
            [nvcc, "--list-gpu-code"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise EdgecvError(f"cannot run {nvcc} --list-gpu-code: {err}") from None
    return _SM.findall(out)


def check_toolchain(resolved: ResolvedTarget) -> None:
    """Refuse, before any work, a target whose compilers are missing on this machine."""
    if resolved.target.device == "cuda":
        nvcc = shutil.which("nvcc")
        if nvcc is None:
            raise EdgecvError(
                f"target {resolved.target.name!r} needs nvcc (the CUDA toolkit) on PATH to "
                "compile kernels"
            )
        supported = nvcc_architectures(nvcc)
        missing = [sm for sm in resolved.sms + [resolved.ptx or ""] if sm and sm not in supported]
        if missing:
            what = f"--arch {resolved.arch.name}" if resolved.arch else f"target {resolved.label}"
            raise EdgecvError(
                f"{what} needs kernels for {', '.join(missing)}, which this "
                f"nvcc ({nvcc}) cannot build (it builds {', '.join(supported) or 'nothing'}); "
                "use a CUDA toolkit that still supports it (sm_53 and sm_72: CUDA 12.x or older)"
            )
    linker = resolved.linker
    if linker is not None and shutil.which(linker) is None:
        raise EdgecvError(
            f"target {resolved.label!r} runs on {resolved.host_triple}: its cross compiler "
            f"{linker} is not installed (Debian: apt-get install g++-aarch64-linux-gnu, "
            "or `make cross-tools`)"
        )
