"""Which GPU code a compiled library embeds, read from its bytes (no CUDA, no TVM needed).

nvcc packs kernels into *fatbins*: a header (magic 0xBA55ED50, version, header size, payload
size) followed by entries, each with its own header: kind (1 PTX, 2 ELF cubin), header size,
payload size and, at byte 28, the SM architecture as a number (87 for sm_87). A cubin is a
CUDA ELF (e_machine 190) whose e_flags repeat the architecture: bits 0-7 up to ELF ABI
version 7, bits 8-15 from version 8 (CUDA 12.8+). PTX text says ``.target sm_XY``.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

_FATBIN_MAGIC = struct.pack("<I", 0xBA55ED50)
_EM_CUDA = 190
_PTX_TARGET = re.compile(rb"^\s*\.target\s+(sm_\d+[a-z]?)", re.MULTILINE)


@dataclass(frozen=True)
class DeviceCode:
    kind: str  # "cubin" or "ptx"
    arch: str  # "sm_87"
    checked: str  # where the arch was read: "fatbin header+elf", "fatbin header", "ptx text"


def _cubin_arch(elf: bytes) -> int | None:
    """The SM number in a CUDA ELF's e_flags, or None if ``elf`` is not a CUDA ELF."""
    if len(elf) < 52 or elf[:4] != b"\x7fELF" or elf[4] != 2:  # 64-bit ELF only
        return None
    (machine,) = struct.unpack_from("<H", elf, 18)
    (flags,) = struct.unpack_from("<I", elf, 48)
    if machine != _EM_CUDA:
        return None
    return (flags >> 8) & 0xFF if elf[8] >= 8 else flags & 0xFF


def _fatbin_entries(blob: bytes, start: int) -> list[DeviceCode]:
    _, _, header_size, fat_size = struct.unpack_from("<IHHQ", blob, start)
    pos, end = start + header_size, min(start + header_size + fat_size, len(blob))
    found = []
    while pos + 32 <= end:
        kind, _, entry_header, size = struct.unpack_from("<HHIQ", blob, pos)
        (arch,) = struct.unpack_from("<I", blob, pos + 28)
        if kind not in (1, 2) or entry_header < 32 or size == 0:
            break
        payload = blob[pos + entry_header : pos + entry_header + size]
        if kind == 2:
            elf_arch = _cubin_arch(payload)
            if elf_arch is not None and elf_arch != arch:
                raise ValueError(f"cubin header says sm_{arch}, its ELF says sm_{elf_arch}")
            checked = "fatbin header" if elf_arch is None else "fatbin header+elf"
            found.append(DeviceCode("cubin", f"sm_{arch}", checked))
        else:
            found.append(DeviceCode("ptx", f"sm_{arch}", "fatbin header"))
        pos += entry_header + size
    return found


def embedded_device_code(path: str | os.PathLike[str]) -> list[DeviceCode]:
    """Every cubin and PTX module embedded in the file at ``path`` (empty: none)."""
    with open(path, "rb") as f:
        blob = f.read()
    found: list[DeviceCode] = []
    at = blob.find(_FATBIN_MAGIC)
    while at >= 0:
        found += _fatbin_entries(blob, at)
        at = blob.find(_FATBIN_MAGIC, at + 4)
    if not found:  # PTX stored as text (not in a fatbin)
        found = [DeviceCode("ptx", m.decode(), "ptx text") for m in _PTX_TARGET.findall(blob)]
    return found


def embeds_cuda_source(path: str | os.PathLike[str]) -> bool:
    """Whether the library carries CUDA C source kernels (what TVM embeds when it could not
    compile them; no runtime can load those)."""
    with open(path, "rb") as f:
        return b'extern "C" __global__' in f.read()
