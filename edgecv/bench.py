"""Latency of a compiled artifact (C++ runtime) next to ONNX Runtime on the same ONNX
model, in one process, with the same input. Writes JSON and prints a table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import read_manifest


def _time(fn: Callable[[], Any], warmup: int, repeat: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[min(len(samples) - 1, int(0.9 * len(samples)))],
        "min_ms": samples[0],
        "runs": len(samples),
    }


def bench_artifact(
    artifact_dir: str | os.PathLike[str], warmup: int = 2, repeat: int = 10, threads: int = 2
) -> dict[str, Any]:
    """Time the artifact's network (preprocessed input → outputs) in edgecv and ORT."""
    import onnxruntime as ort

    from .runtime import Predictor

    directory = Path(artifact_dir)
    doc = read_manifest(directory)
    shape = doc["inputs"][0]["shape"]
    x = np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32)

    predictor = Predictor(directory)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(directory / doc["files"]["onnx"]), opts, providers=["CPUExecutionProvider"]
    )
    stages: list[dict[str, float]] = []
    edge = _time(lambda: stages.append(predictor.run_tensor(x).timings), warmup, repeat)
    network = sorted(t["inference_ms"] for t in stages[warmup:])
    post = sorted(t["postprocess_ms"] for t in stages[warmup:])
    edge["network_median_ms"] = statistics.median(network)
    edge["postprocess_median_ms"] = statistics.median(post)
    ref = _time(lambda: session.run(None, {"data": x}), warmup, repeat)
    a = predictor.run_tensor(x).outputs[0]
    b = session.run(None, {"data": x})[0]
    return {
        "model": doc["model"]["name"],
        "target": doc["target"]["name"],
        "precision": doc["precision"],
        "input_shape": shape,
        "threads": {"onnxruntime": threads, "tvm": os.environ.get("TVM_NUM_THREADS", "default")},
        "edgecv": edge,
        "onnxruntime": ref,
        "task": doc["model"]["task"],
        # ORT runs the same ONNX graph (the network only): compare it with the network time
        "speedup_vs_onnxruntime": ref["median_ms"] / edge["network_median_ms"],
        "max_abs_diff": float(np.abs(a - b).max()),
        "output_scale": float(np.abs(b).max()),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": {"onnxruntime": ort.__version__, **doc["toolchain"]},
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'model':<26} {'input':<16} {'edgecv net ms':>13} {'post ms':>8} {'ORT ms':>10} "
        f"{'ORT/edgecv':>11} {'max|Δ|/scale':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['model']:<26} {'x'.join(map(str, r['input_shape'])):<16} "
            f"{r['edgecv']['network_median_ms']:>13.2f} {r['edgecv']['postprocess_median_ms']:>8.2f} "
            f"{r['onnxruntime']['median_ms']:>10.2f} "
            f"{r['speedup_vs_onnxruntime']:>11.3f} "
            f"{r['max_abs_diff'] / max(r['output_scale'], 1e-30):>12.2e}"
        )
    return "\n".join(lines)


def write_report(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    Path(path).write_text(json.dumps({"results": rows}, indent=2) + "\n")
