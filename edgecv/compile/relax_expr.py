"""Reading and rebinding Relax expressions, for the layer rewrites (offload.py,
int8_lowering.py) and the passes before them (relax_prepare.py): a call's op name, a
constant's value, a static shape, who uses each variable, and replacing a binding inside a
mutator. TVM is imported inside each function, so importing this module does not import it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def op_name(value: Any) -> str | None:
    import tvm
    from tvm import relax

    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        return str(value.op.name)
    return None


def const_value(expr: Any) -> np.ndarray | None:
    import tvm

    return expr.value.numpy() if isinstance(expr, tvm.ir.expr.Constant) else None


def static_shape(expr: Any) -> tuple[int, ...] | None:
    sinfo = expr.ty
    if not hasattr(sinfo, "shape") or sinfo.shape is None or not hasattr(sinfo.shape, "values"):
        return None
    try:
        return tuple(int(v) for v in sinfo.shape.values)
    except TypeError:  # symbolic dims
        return None


def binding_users(func: Any) -> dict[Any, list[Any]]:
    """Per variable, the variables of the bindings that use it (None: the function's result)."""
    from tvm import relax

    users: dict[Any, list[Any]] = {}
    for b in (b for block in func.body.blocks for b in block.bindings):
        for v in relax.analysis.free_vars(b.value):
            users.setdefault(v, []).append(b.var)
    for v in relax.analysis.free_vars(func.body.body):
        users.setdefault(v, []).append(None)
    return users


def emit_as(mutator: Any, var: Any, value: Any) -> None:
    """Bind ``value`` (already visited) in place of ``var``'s binding in a dataflow block."""
    from tvm import relax

    if isinstance(var, relax.DataflowVar):
        new = mutator.builder_.emit(value, var.name)
    else:  # a block output
        new = mutator.builder_.emit_output(value, var.name)
    mutator.set_var_remap(var, new)
