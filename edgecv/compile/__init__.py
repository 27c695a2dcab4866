"""The compile stage: an exported bundle (ONNX model + edgecv metadata, see
:mod:`edgecv.bundle`) → TVM Relax → shared library → artifact directory.

    compile_bundle("model.onnx", CompileOptions(target="x86_64"))

Modules, the driving ones first:

- ``options``: what is asked, kernel choice; ``build``: the float/fp16 artifact;
  ``int8_build``: ``--int8`` (calibration, the int8 build, the accuracy gate); ``tune``:
  ``edgecv tune`` on a bundle; ``tvm_process``: the TVM build (or tuning) job, run in a
  child process; ``kernel_abi``: the kernel calls' settings records (NumPy only).
- TVM's API (imported inside functions): ``tvm_api`` (import and build), ``relax_prepare``
  (the Relax passes before the layer rewrites), ``layer_plan`` (which bindings make a
  layer; shared by both rewrites), ``kernel_calls`` (kernel names, each call's settings),
  ``int8_plan`` (int8 weights, outputs that stay quantised), ``offload`` (the
  kernel-library rewrite), ``int8_lowering`` (int8 as integer Relax ops, for targets without
  int8 kernels), ``relax_expr`` (reading Relax expressions), ``metaschedule`` (tuning),
  ``profile`` (VM profiling for ``edgecv bench``).

No module outside this package imports TVM's Python API.

This package never imports MXNet, ``edgecv.zoo`` or ``edgecv.export`` (tests/test_imports.py
checks it): everything it knows of a model comes from the bundle. Compiling a zoo model by
name (export first, then this) is :func:`edgecv.deploy.compile_model`; the name
``edgecv.compile.compile_model`` forwards to it lazily, for existing callers, and importing
this package does not import it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .build import compile_float, run_network
from .int8_build import compile_int8
from .options import CompileOptions, choose_kernels, default_out_dir, local_kernel_libraries


def compile_bundle(
    bundle_path: str | os.PathLike[str], options: CompileOptions, step: Any = lambda _: None
) -> Path:
    """Build the artifact of the bundle at ``bundle_path`` (fp32, fp16 or int8, as
    ``options.precision`` says); returns its directory. Raises an
    :class:`~edgecv.errors.EdgecvError` subclass on failure, leaving no partial artifact."""
    if options.precision == "int8":
        return compile_int8(bundle_path, options, step)
    return compile_float(bundle_path, options, step)


def __getattr__(name: str) -> Any:
    # compatibility: compiling a zoo model by name is the deploy driver's (it exports
    # first); imported only when asked for, so this package stays below edgecv.deploy
    if name == "compile_model":
        from ..deploy import compile_model

        return compile_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CompileOptions",
    "choose_kernels",
    "compile_bundle",
    "compile_float",
    "compile_int8",
    "compile_model",
    "default_out_dir",
    "local_kernel_libraries",
    "run_network",
]
