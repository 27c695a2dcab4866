"""Profiling hooks into TVM for ``edgecv bench`` (:mod:`edgecv.bench`): a compiled library run
in TVM's Relax VM with a timer around every call it makes, and one kernel-library function
called directly. TVM's Python API stays in this package (tests/test_imports.py checks it);
:mod:`edgecv.bench` turns what these return into its tables."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import kernel_abi
from .options import local_kernel_libraries

# one call the VM made: (function name, shapes of its tensor arguments, milliseconds)
Call = tuple[str, list[tuple[int, ...]], float]


def _shapes(args: tuple[Any, ...]) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in a.shape) for a in args if hasattr(a, "shape")]


def profile_vm_calls(
    library: str | os.PathLike[str],
    inputs: list[np.ndarray],
    runs: int,
    between: Callable[[], None] = lambda: None,
) -> list[list[Call]]:
    """Run ``main(*inputs)`` of the compiled ``library`` ``runs + 1`` times in TVM's Relax VM
    (the first run warms up, untimed), calling ``between()`` after each run (a caller times
    something else in turn). Returns, per timed run, every call the VM made, in order: its
    function name (kernel layers ``edgecv.*``, runtime builtins ``vm.builtin.*``,
    TVM-generated functions by their names), its tensor arguments' shapes and its time."""
    import tvm
    from tvm import relax

    from .. import _runtime  # registers the kernel functions the library calls

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
    args = [tvm.runtime.tensor(a) for a in inputs]
    calls: list[list[Call]] = []
    started: list[float] = []

    def instrument(_func: Any, name: str, before: bool, _ret: Any, *call_args: Any) -> None:
        if before:
            started.append(time.perf_counter())
            return
        ms = (time.perf_counter() - started.pop()) * 1e3
        calls[-1].append((str(name), _shapes(call_args), ms))

    try:
        for i in range(runs + 1):
            if i == 1:
                vm.set_instrument(instrument)
            if i > 0:
                calls.append([])
            vm["main"](*args)
            between()
    finally:
        _runtime.clear_kernel_cache()
    return calls


def dnnl_dense_ms(a: np.ndarray, b: np.ndarray, repeat: int) -> float | None:
    """Best time in ms of ``a @ b.T`` (square, float32) through oneDNN's inner product (the
    runtime's dense kernel) after one untimed call, or None where the runtime lacks oneDNN
    or TVM's Python package is missing."""
    try:
        import tvm

        if "dnnl" not in local_kernel_libraries():
            return None
        dense = tvm.get_global_func("edgecv.dnnl.dense")
    except (ImportError, ValueError, AttributeError):
        return None
    n = a.shape[0]
    x, w = tvm.runtime.tensor(a), tvm.runtime.tensor(b)
    bias = tvm.runtime.tensor(np.zeros(n, np.float32))
    out = tvm.runtime.tensor(np.empty((n, n), np.float32))
    settings = tvm.runtime.ShapeTuple(kernel_abi.encode(kernel_abi.Dense(), key=0x5EED))
    dense(x, w, bias, settings, out)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        dense(x, w, bias, settings, out)
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return best
