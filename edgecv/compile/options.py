"""What a compile is asked for (:class:`CompileOptions`), and the choices made from it before
any work: the artifact's directory and the kernel libraries its layers call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgecvError, InvalidInputError
from ..targets import KERNEL_PACKAGES, ResolvedTarget


@dataclass
class CompileOptions:
    # the zoo model (edgecv.deploy.compile_model), or the artifact's name when compiling a
    # bundle (compile_bundle; empty: the name in the bundle's metadata)
    model: str = ""
    target: str = "x86_64"
    arch: str | None = None  # GPU targets: the GPU (`edgecv targets` lists them)
    precision: str = "fp32"
    # export settings, used by edgecv.deploy when it exports a zoo model (a bundle's ONNX
    # graph is already fixed): square input side (None: the model's own), .params file
    input_size: int | None = None
    pretrained: str | None = None
    out_dir: str | None = None
    top_k: int = 5  # export setting too: the classification topk op's k
    parity_rtol: float = 1e-4
    seed: int = 0
    # "auto": the target's kernel library (oneDNN on x86) when usable here, else TVM alone;
    # "tvm": TVM-generated code only; or a library name ("dnnl")
    kernels: str = "auto"
    # int8 (see int8_build.py): calibration images or a saved table, evaluation data for the
    # accuracy gate, and overrides of the model's calibration recipe
    calib_data: str | None = None
    calibration_table: str | None = None
    calibrator: str | None = None
    calib_images: int | None = None
    keep_float: list[str | int] | None = None
    eval_data: str | None = None
    max_drop: float = 1.0  # points of the task metric int8 may lose against float
    tuning_db: str | None = None  # a MetaSchedule database made by `edgecv tune`


def default_out_dir(model: str, target: str, precision: str) -> Path:
    """``artifacts/<model>-<target>-<precision>``."""
    return Path("artifacts") / f"{model}-{target}-{precision}"


def local_kernel_libraries() -> list[str]:
    """Kernel libraries the edgecv runtime installed here was built with."""
    try:
        from .. import _runtime
    except ImportError:
        return []
    return list(_runtime.kernel_libraries())


def choose_kernels(requested: str, target: ResolvedTarget) -> list[str]:
    """The kernel libraries the artifact will call (none: TVM-generated code only)."""
    offered = target.target.kernels
    if requested == "tvm" or (requested == "auto" and not offered):
        return []
    library = offered[0] if requested == "auto" else requested
    if library not in offered:
        raise InvalidInputError(
            f"target {target.label!r} has no {requested!r} kernels "
            f"(it offers: {', '.join(offered) or 'none'}; or --kernels tvm)"
        )
    if target.is_native and library not in local_kernel_libraries():
        if requested == "auto":
            return []  # nothing here could run (and check) the artifact: TVM alone
        raise EdgecvError(
            f"the edgecv runtime here was built without {library} kernels, so the artifact "
            f"could not be checked: install {KERNEL_PACKAGES[library]} and reinstall edgecv, "
            "or compile with --kernels tvm"
        )
    return [library]
