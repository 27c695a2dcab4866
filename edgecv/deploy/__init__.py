"""The deploy driver: the only code that spans MXNet and TVM.

    zoo model ──export (MXNet → ONNX + metadata, checked)──▶ bundle ──compile (TVM)──▶ artifact
                                                                    (TVM vs ONNX Runtime,
                                                                     int8 calibration + gate)

:func:`compile_model` and :func:`tune_model` take a zoo model name: they export its bundle
(``zoo_bundle.export_model``) to a temporary file and hand it to the compile stage
(:func:`edgecv.compile.compile_bundle`, :func:`edgecv.compile.tune.tune_bundle`), which reads
everything from the bundle. Nothing below this package imports it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compile import CompileOptions, compile_bundle
from .zoo_bundle import deploy_head, export_model, resolve_data, weights_label


def compile_model(options: CompileOptions, step: Any = lambda _: None) -> Path:
    """Build the artifact of the zoo model ``options.model``; returns its directory.

    Steps: build the Gluon model, export its bundle (ONNX checked against MXNet), then the
    compile stage: import into TVM, compile for the target, check TVM against ONNX Runtime
    (int8: calibrate and gate), write the artifact. Raises an
    :class:`~edgecv.errors.EdgecvError` subclass on any failure, leaving no partial
    artifact behind.
    """
    from ..targets import check_toolchain, resolve_target
    from ..zoo import MODELS

    # refuse a bad name, target or input size before the slow build and export
    spec = MODELS.get(options.model)
    check_toolchain(resolve_target(options.target, options.arch, options.precision))
    resolve_data(spec, options.input_size)
    with tempfile.TemporaryDirectory(prefix="edgecv-deploy-") as tmp:
        bundle_path, _ = export_model(
            options.model,
            Path(tmp) / "model.onnx",
            options.input_size,
            options.pretrained,
            options.seed,
            options.top_k,
            step,
        )
        return compile_bundle(bundle_path, options, step)


@dataclass
class TuneOptions:
    model: str
    db: str
    trials: int = 64
    target: str = "x86_64"
    input_size: int | None = None
    pretrained: str | None = None
    kernels: str = "auto"
    seed: int = 0
    rpc: str | None = None  # HOST:PORT of a TVM RPC tracker: measure on its boards
    key: str | None = None  # which of the tracker's boards


def tune_model(options: TuneOptions, step: Any = lambda _: None) -> dict[str, Any]:
    """``edgecv tune``: export the zoo model's bundle, then tune it (see compile/tune.py)."""
    from ..compile.tune import tune_bundle
    from ..errors import InvalidInputError
    from ..targets import check_toolchain, resolve_target
    from ..zoo import MODELS

    spec = MODELS.get(options.model)
    if options.trials < 1:
        raise InvalidInputError(f"--trials must be at least 1, got {options.trials}")
    target = resolve_target(options.target, None, "fp32")
    measurable = target.is_native or options.rpc is not None
    if measurable:
        check_toolchain(target)
    resolve_data(spec, options.input_size)
    with tempfile.TemporaryDirectory(prefix="edgecv-tune-") as tmp:
        if measurable:
            bundle_path, _ = export_model(
                options.model,
                Path(tmp) / "model.onnx",
                options.input_size,
                options.pretrained,
                options.seed,
                step=step,
            )
        else:
            bundle_path = Path(tmp) / "model.onnx"  # tune_bundle refuses it before reading
        return tune_bundle(
            bundle_path,
            options.db,
            options.trials,
            options.target,
            options.kernels,
            options.seed,
            step,
            options.rpc,
            options.key,
        )


__all__ = [
    "CompileOptions",
    "TuneOptions",
    "compile_model",
    "deploy_head",
    "export_model",
    "tune_model",
    "weights_label",
]
