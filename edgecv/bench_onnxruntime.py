"""ONNX Runtime's side of a benchmark: the CPU session every comparison runs (thread counts
fixed, profiler on request), and ORT's own static int8 of a model, the reference for
edgecv's int8. onnxruntime is imported inside each function."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def ort_session(
    onnx_path: str | os.PathLike[str], threads: int, profile: Path | None = None
) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads; ``profile``: its
    profiler on, writing under that file prefix."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if profile is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile)
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def onnxruntime_int8(
    onnx_path: str | os.PathLike[str], inputs: list[np.ndarray], out_path: str | os.PathLike[str]
) -> None:
    """ONNX Runtime's own int8 of the same model, the comparison for edgecv's int8:
    ORT's pre-processing (shape inference, batch norm fused into conv), then static QDQ
    quantisation calibrated on the same preprocessed images (uint8 activations, int8
    per-channel weights: ORT's fast x86 path)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.it = iter([{"data": x} for x in inputs])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    pre = Path(out_path).with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": 99.99},
        )
    finally:
        pre.unlink(missing_ok=True)
