"""Everything that knows TVM's Python API (apache-tvm 0.27 Relax) lives here, so the next
TVM upgrade touches one file."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgecvError


def versions() -> dict[str, str]:
    import tvm
    import tvm_ffi

    return {"tvm": tvm.__version__, "tvm_ffi": tvm_ffi.__version__}


def import_onnx(model: Any, embed_params: bool = False) -> tuple[Any, list[tuple[str, np.ndarray]]]:
    """ONNX model → (Relax module whose ``main`` takes (input, *params), ordered params).

    ``embed_params``: the weights stay constants of the graph instead (no params), as the
    kernel-library rewrite needs them to fold batch norm and pack weights.
    """
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    if embed_params:
        return from_onnx(model, keep_params_in_input=False), []
    mod = from_onnx(model, keep_params_in_input=True)
    mod, params = relax.frontend.detach_params(mod)
    names = [str(v.name) for v in mod["main"].params[1:]]
    values = params.get("main", [])
    if len(names) != len(values):
        raise RuntimeError(f"TVM import: {len(names)} parameters but {len(values)} values")
    return mod, [(n, v.numpy()) for n, v in zip(names, values, strict=True)]


def offload_kernels(
    mod: Any, library: str, quant: Any = None, keep_float: list[str | int] = ()
) -> tuple[Any, dict[str, Any]]:
    """Move convolutions and dense layers to ``library``'s kernels (see offload.py);
    ``quant`` (an ``offload.Quantization``) makes the calibrated layers int8 (oneDNN)."""
    from . import offload

    if library not in offload.KERNELS:
        raise EdgecvError(f"no offload rewrite for kernel library {library!r}")
    return offload.offload(offload.prepare(mod, library), quant, keep_float, library)


def to_fp16(mod: Any) -> Any:
    """Half precision: TVM's mixed-precision pass with float16 accumulation, so that convs
    and matmuls compute in fp16 on hardware that has it (GPUs, ARMv8.2-A cores with
    fullfp16); ops that need float32 range (softmax, reductions) stay float32 where the pass
    keeps them so. The graph's input and outputs stay float32 (casts at the edges). Weights
    must be constants of the graph: they are converted once, here."""
    import tvm
    from tvm import relax

    return tvm.transform.Sequential(
        [
            relax.transform.ToMixedPrecision(out_dtype="float16"),
            relax.transform.FoldConstant(),
            relax.transform.DeadCodeElimination(),
        ]
    )(mod)


def build(
    mod: Any,
    target: dict[str, Any],
    library: Path,
    linker: str | None = None,
    tuning_db: str | None = None,
    gpu_code: dict[str, Any] | None = None,
) -> None:
    """Compile a Relax module for ``target`` and write the shared library.

    ``linker``: the C++ compiler that links the library for another CPU (a cross compiler);
    None links with the native one. CUDA targets get TVM's default GPU schedules.
    ``tuning_db``: a MetaSchedule database (``edgecv tune``) whose schedules are applied.
    ``gpu_code``: {"sms": [...], "ptx": sm or None} (CUDA): nvcc compiles the kernels into
    one fatbin with a cubin for each sm and that sm's PTX (default: the target's arch only).
    """
    import tvm
    from tvm.support import cc

    tvm_target = tvm.target.Target(target)
    pipeline: dict[str, Any] = {}  # empty: TVM's default pipeline for the target
    if tvm_target.kind.name == "cuda":
        _load_cuda_codegen()
        pipeline["relax_pipeline"] = _gpu_pipeline(tvm_target)
    try:
        with tvm_target, _environ(TVM_CUDA_COMPILE_MODE="nvcc"), _nvcc_gencode(gpu_code):
            if tuning_db:
                from .metaschedule import build_tuned

                executable = build_tuned(mod, tvm_target, tuning_db)
            else:
                executable = tvm.compile(mod, target=tvm_target, **pipeline)
        fcompile = cc.cross_compiler(linker) if linker else None
        executable.export_library(str(library), fcompile=fcompile)
    except Exception as err:  # TVM, nvcc and the linker all fail with long texts: keep the end
        tail = " | ".join(line.strip() for line in str(err).strip().splitlines()[-6:])
        raise EdgecvError(f"TVM could not build for {tvm_target.kind.name}: {tail}") from err


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def gencode_flags(sms: list[str], ptx: str | None) -> list[str]:
    """nvcc flags for a fatbin with a cubin for each of ``sms`` and the PTX of ``ptx``."""
    flags = []
    for sm in sms:
        flags += ["-gencode", f"arch=compute_{sm[3:]},code={sm}"]
    if ptx:
        flags += ["-gencode", f"arch=compute_{ptx[3:]},code=compute_{ptx[3:]}"]
    return flags


@contextmanager
def _nvcc_gencode(gpu_code: dict[str, Any] | None) -> Iterator[None]:
    """Within the block, TVM's CUDA compile callback (``tvm_callback_cuda_compile``, which
    TVM calls with the generated CUDA source) runs nvcc with ``gpu_code``'s -gencode flags:
    TVM 0.27's own callback builds for the target's one arch, but its nvcc helper takes a
    list of flags, so one source becomes a fatbin for several architectures.
    ``EDGECV_CUDA_SOURCE_DIR``: write the CUDA source TVM generated there (kernels-N.cu)."""
    if not gpu_code:
        yield
        return
    import tvm_ffi
    from tvm.support import nvcc

    flags = gencode_flags(list(gpu_code["sms"]), gpu_code.get("ptx"))
    name = "tvm_callback_cuda_compile"
    previous = tvm_ffi.get_global_func(name, allow_missing=True)

    keep = os.environ.get("EDGECV_CUDA_SOURCE_DIR")  # tests and inspection: keep the source

    def compile_fatbin(code: str, *_: Any) -> bytes:
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            n = len(list(Path(keep).glob("kernels-*.cu")))
            (Path(keep) / f"kernels-{n}.cu").write_text(code)
        return nvcc.compile_cuda(
            code,
            target_format="fatbin",
            arch=flags,
            options=["--threads", "0"],  # the architectures compile in parallel
            compiler="nvcc",
        )

    tvm_ffi.register_global_func(name, compile_fatbin, override=True)
    try:
        yield
    finally:
        if previous is not None:
            tvm_ffi.register_global_func(name, previous, override=True)


def _load_cuda_codegen() -> None:
    """Make TVM put compiled kernels (nvcc fatbins) into CUDA libraries.

    TVM creates the CUDA device module through libtvm_runtime_cuda; when that library cannot
    be loaded (it links the driver, libcuda.so.1, absent on a build machine without a GPU),
    ``tvm.compile`` silently embeds CUDA *source* instead, which no runtime can load. Where
    there is no driver, a no-op libcuda.so.1 (every driver symbol the library imports,
    returning CUDA_ERROR_NO_DEVICE) is loaded first; it is never called while compiling.
    """
    import tvm

    if tvm.get_global_func("ffi.Module.create.cuda", allow_missing=True) is not None:
        return
    runtime_cuda = Path(tvm.__file__).resolve().parent / "lib" / "libtvm_runtime_cuda.so"
    if not runtime_cuda.is_file():
        raise EdgecvError(f"{runtime_cuda} is missing: this TVM cannot build CUDA libraries")
    try:
        ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        _load_driver_stub(runtime_cuda)
    try:
        ctypes.CDLL(str(runtime_cuda), mode=ctypes.RTLD_GLOBAL)
    except OSError as err:  # e.g. no libcudart.so.13 (the CUDA runtime TVM's wheel links)
        raise EdgecvError(
            f"cannot load TVM's CUDA module, needed to build kernels: {err}"
        ) from None
    if tvm.get_global_func("ffi.Module.create.cuda", allow_missing=True) is None:
        raise EdgecvError(f"loading {runtime_cuda} did not register TVM's CUDA module")


def _load_driver_stub(runtime_cuda: Path) -> None:
    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(cmd, capture_output=True, text=True)
        except OSError as err:  # nm / cc missing: binutils and a C compiler are needed here
            raise EdgecvError(f"cannot build a CUDA driver stub: {err}") from None

    nm = run(["nm", "-D", "--undefined-only", str(runtime_cuda)])
    symbols = sorted(set(re.findall(r"\bU (cu[A-Z]\w*)$", nm.stdout, re.MULTILINE)))
    if nm.returncode != 0 or not symbols:
        raise EdgecvError(f"cannot list the CUDA driver symbols of {runtime_cuda}: {nm.stderr}")
    with tempfile.TemporaryDirectory(prefix="edgecv-cuda-") as tmp:
        source, stub = Path(tmp) / "stub.c", Path(tmp) / "libcuda.so.1"
        source.write_text("".join(f"int {s}(void) {{ return 100; }}\n" for s in symbols))
        res = run(
            ["cc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(stub), str(source)]
        )
        if res.returncode != 0:
            raise EdgecvError(f"cannot build a CUDA driver stub: {res.stderr.strip()}")
        ctypes.CDLL(str(stub), mode=ctypes.RTLD_GLOBAL)  # stays loaded once the file is gone


def _gpu_pipeline(target: Any) -> Any:
    """TVM's CUDA pipeline, with its default GPU schedule rules (dlight) made fault-tolerant:
    a rule that fails on a kernel (0.27's GEMV rule asserts on some pooling reductions) passes
    the kernel to the next rule instead of failing the build; Fallback binds every kernel."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cuda import pipeline as cuda
    from tvm.s_tir import dlight as dl

    class Tolerant(dl.ScheduleRule):
        def __init__(self, rule: Any) -> None:
            self.rule = rule

        def apply(self, func: Any, target: Any, tunable: bool) -> Any:
            try:
                return self.rule.apply(func, target, tunable)
            except Exception:  # noqa: BLE001 - any failure means "not applicable"
                return None

    class NoInt8TensorCores(dl.ScheduleRule):
        """dlight's Matmul rule puts int8 x int8 -> int32 matmuls (and convolutions it sees as
        matmuls) on tensor cores (wmma), for which TVM 0.27's CUDA codegen fails ("Check
        failed: it != fragment_info_.end()"); those kernels get the rule's SIMT schedule
        (register and shared-memory tiling) instead, by showing it a GPU without them."""

        def __init__(self, rule: Any) -> None:
            self.rule = rule
            self.simt = tvm.target.Target({"kind": "cuda", "arch": "sm_61"})

        def apply(self, func: Any, target: Any, tunable: bool) -> Any:
            if '"int8"' in func.script():  # TVMScript's buffer dtypes; 0.27 has no buffer_map
                target = self.simt
            return self.rule.apply(func, target, tunable)

    rules = [
        NoInt8TensorCores(dl.gpu.Matmul()),
        dl.gpu.GEMV(),
        dl.gpu.Reduction(),
        dl.gpu.GeneralReduction(),
    ]
    schedule = dl.ApplyDefaultSchedule(*(Tolerant(r) for r in rules), dl.gpu.Fallback())
    legalize = [
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        schedule,
    ]

    @tvm.transform.module_pass(opt_level=0)
    def pipeline(mod: Any, _ctx: Any) -> Any:
        passes = (
            cuda.library_dispatch_passes(target)
            + legalize
            + cuda.dataflow_lower_passes(target)
            + cuda.finalize_passes(target)
        )
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return pipeline


def run(library: Path, inputs: list[np.ndarray], params: list[np.ndarray]) -> list[np.ndarray]:
    """Run ``main`` of a compiled library with TVM's own Python VM (CPU)."""
    import tvm
    from tvm import relax

    from .. import _runtime  # registers the kernel functions that libraries may call

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
    args = [tvm.runtime.tensor(a) for a in [*inputs, *params]]
    try:
        out = vm["main"](*args)
        items = [out] if hasattr(out, "numpy") else list(out)
        return [o.numpy() for o in items]
    finally:  # this VM is gone after the call: do not keep its packed weights
        _runtime.clear_kernel_cache()
