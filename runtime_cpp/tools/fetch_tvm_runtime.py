#!/usr/bin/env python3
"""Fetch TVM's runtime libraries — and nothing of its compiler — for one platform.

Downloads the apache-tvm and apache-tvm-ffi wheels for the platform with pip (nothing is
installed) and unpacks only what the edgecv C++ runtime needs:

    OUT/lib/libtvm_runtime.so        (apache-tvm)
    OUT/lib/libtvm_runtime_cuda.so   (apache-tvm; used only with -DEDGECV_WITH_CUDA=ON)
    OUT/lib/libtvm_ffi.so            (apache-tvm-ffi)
    OUT/include/                     (tvm-ffi and dlpack headers)

then the runtime builds with ``-DEDGECV_TVM_LIB_DIR=OUT/lib -DEDGECV_TVM_FFI_DIR=OUT``.
The prebuilt wheels are used rather than building libtvm_runtime from source because the
wheel does not carry the runtime's full sources (src/support, its CMake files) and a
from-source build needs TVM's whole tree and toolchain; the wheel's libraries are the very
ones the compiler side was tested with. Versions default to the apache-tvm installed next
to this Python (the compiler the artifacts came from), else to edgecv's pins.

    python fetch_tvm_runtime.py --out build/tvm-runtime/aarch64 --platform manylinux_2_28_aarch64
    python fetch_tvm_runtime.py --out ~/tvm-runtime          # on the device itself
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

PINS = {"apache-tvm": "0.27.0.post1", "apache-tvm-ffi": "0.1.14.post1"}
WANTED = {  # wheel member → destination under OUT
    "tvm/lib/libtvm_runtime.so": "lib/libtvm_runtime.so",
    "tvm/lib/libtvm_runtime_cuda.so": "lib/libtvm_runtime_cuda.so",
    "tvm_ffi/lib/libtvm_ffi.so": "lib/libtvm_ffi.so",
}
HEADERS = "tvm_ffi/include/"


def default_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return PINS[package]


def download(requirements: list[str], platform: str | None, python: str, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    if platform:
        cmd += ["--platform", platform, "--python-version", python]
    cmd += ["-d", str(dest), *requirements]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"fetch_tvm_runtime: pip download failed:\n{res.stderr.strip()}")


def unpack(wheels: list[Path], out: Path) -> list[str]:
    found = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name in WANTED:
                    target = out / WANTED[name]
                elif name.startswith(HEADERS) and not name.endswith("/"):
                    target = out / "include" / name[len(HEADERS) :]
                else:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                found.append(name)
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="directory to fill (replaced)")
    p.add_argument(
        "--platform", help="wheel platform tag, e.g. manylinux_2_28_aarch64 (default: this machine)"
    )
    p.add_argument("--python-version", default="3.11", help="with --platform: the wheels' Python")
    p.add_argument("--tvm-version", default=default_version("apache-tvm"))
    p.add_argument("--tvm-ffi-version", default=default_version("apache-tvm-ffi"))
    args = p.parse_args()

    requirements = [
        f"apache-tvm=={args.tvm_version}",
        f"apache-tvm-ffi=={args.tvm_ffi_version}",
    ]
    with tempfile.TemporaryDirectory(prefix="edgecv-tvm-wheels-") as tmp:
        download(requirements, args.platform, args.python_version, Path(tmp))
        staging = args.out.with_name(args.out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        found = unpack(sorted(Path(tmp).glob("*.whl")), staging)
    missing = [w for w in WANTED if w not in found]
    if missing or not any(f.startswith(HEADERS) for f in found):
        shutil.rmtree(staging, ignore_errors=True)
        sys.exit(
            f"fetch_tvm_runtime: the wheels lack {', '.join(missing) or 'the tvm-ffi headers'}"
        )
    (staging / "VERSIONS").write_text(
        "\n".join(requirements) + f"\nplatform {args.platform or 'native'}\n"
    )
    shutil.rmtree(args.out, ignore_errors=True)
    staging.rename(args.out)
    print(f"TVM runtime ({', '.join(requirements)}) in {args.out}")


if __name__ == "__main__":
    main()
