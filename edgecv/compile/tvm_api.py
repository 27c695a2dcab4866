"""Everything that knows TVM's Python API (apache-tvm 0.27 Relax) lives here, so the next
TVM upgrade touches one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def versions() -> dict[str, str]:
    import tvm
    import tvm_ffi

    return {"tvm": tvm.__version__, "tvm_ffi": tvm_ffi.__version__}


def import_onnx(model: Any) -> tuple[Any, list[tuple[str, np.ndarray]]]:
    """ONNX model → (Relax module whose ``main`` takes (input, *params), ordered params)."""
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(model, keep_params_in_input=True)
    mod, params = relax.frontend.detach_params(mod)
    names = [str(v.name) for v in mod["main"].params[1:]]
    values = params.get("main", [])
    if len(names) != len(values):
        raise RuntimeError(f"TVM import: {len(names)} parameters but {len(values)} values")
    return mod, [(n, v.numpy()) for n, v in zip(names, values, strict=True)]


def build(mod: Any, target: dict[str, Any], library: Path) -> None:
    """Compile a Relax module for ``target`` and write the shared library."""
    import tvm

    tvm_target = tvm.target.Target(target)
    with tvm_target:
        executable = tvm.compile(mod, target=tvm_target)
    executable.export_library(str(library))


def run(library: Path, inputs: list[np.ndarray], params: list[np.ndarray]) -> list[np.ndarray]:
    """Run ``main`` of a compiled library with TVM's own Python VM (CPU)."""
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
    args = [tvm.runtime.tensor(a) for a in [*inputs, *params]]
    out = vm["main"](*args)
    items = [out] if hasattr(out, "numpy") else list(out)
    return [o.numpy() for o in items]
