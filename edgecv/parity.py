"""How two runs of one network are compared: the parity checks of export and compile."""

from __future__ import annotations

import numpy as np

from .errors import ParityError


def check_agreement(
    got: list[np.ndarray], expected: list[np.ndarray], rtol: float, what: str
) -> tuple[float, float]:
    """Max |Δ| over all outputs and the output scale; ParityError if |Δ| > rtol × scale."""
    err = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    scale = max(float(np.abs(e).max()) for e in expected) or 1.0
    if err > rtol * scale:
        raise ParityError(f"{what}: max |Δ| {err:.3g} > {rtol:g} × output scale {scale:.3g}")
    return err, scale
