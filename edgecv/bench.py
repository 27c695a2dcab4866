"""Latency of a compiled artifact (C++ runtime) next to ONNX Runtime on the same ONNX
model, in one process, with the same input: the measurement.

Per artifact: warm latency (median, p90) of both, their ratio, achieved GFLOP/s and the
fraction of this machine's peak (a large single-precision GEMM timed in the same process),
first-run latency (load + first inference), compile time, artifact size, the memory the
artifact takes (peak resident growth while loading and running it), the CPU it ran on, and
for offloaded artifacts the time spent in the kernel library vs TVM-generated code; on
request, a profiled breakdown of both sides' time by kind of operator.

Its neighbours: :mod:`edgecv.bench_onnxruntime` (the ONNX Runtime sessions, ORT's own int8
of a model), :mod:`edgecv.bench_breakdown` (the profiled per-operator breakdown) and
:mod:`edgecv.bench_report` (tables and the JSON report); their public functions are
importable from here too, as ``edgecv bench`` and bench/run.py use them."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import read_manifest
from .bench_breakdown import format_breakdown, operator_breakdown
from .bench_onnxruntime import onnxruntime_int8, ort_session
from .bench_report import format_int8_table, format_machine, format_table, isa_class, write_report

__all__ = [
    "ISA_FLAGS",
    "bench_artifact",
    "bench_on_board",
    "format_board_table",
    "format_breakdown",
    "format_int8_table",
    "format_machine",
    "format_table",
    "isa_class",
    "machine_info",
    "model_flops",
    "onnxruntime_int8",
    "operator_breakdown",
    "peak_gflops",
    "write_report",
]

ISA_FLAGS = (
    "sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8",
    "asimd", "asimddp", "fphp", "asimdhp", "i8mm", "sve",
)  # fmt: skip


def machine_info() -> dict[str, Any]:
    """The CPU a benchmark ran on: model name, the ISA flags above that it has (from
    /proc/cpuinfo), the instruction set oneDNN runs with and the bits of int8 weights its
    kernels compute with here (7 without VNNI: see the runtime's Int8WeightBits)."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model name", "CPU part") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    from . import _runtime

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "cpu_model": model or platform.processor() or "unknown",
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "onednn_isa": _runtime.kernel_isa() or None,
        "int8_weight_bits": _runtime.int8_weight_bits() or None,
    }


def _summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[min(len(samples) - 1, int(0.9 * len(samples)))],
        "min_ms": samples[0],
        "runs": len(samples),
    }


def _time(fn: Callable[[], Any], warmup: int, repeat: int) -> dict[str, float]:
    return _time_in_blocks([fn], warmup, repeat, repeat)[0][0]


def _time_in_blocks(
    fns: list[Callable[[], Any]], warmup: int, repeat: int, block: int, settle_s: float = 0.0
) -> list[tuple[dict[str, float], list[Any]]]:
    """Time several functions in blocks of ``block`` runs each (a×block, b×block, a×block,
    ...), until each has ``repeat`` timed runs, so that a slow spell of a shared machine falls
    on all of them alike. Before each block: ``settle_s`` of sleep, then one untimed run.
    Returns, per function, the summary of its timed runs and what those runs returned.

    The sleep matters when the functions use different thread pools: ONNX Runtime's (and
    OpenMP's) threads spin for a while after a run, taking the cores from whatever runs next.
    Measured here, MobileNetV2 in edgecv: 3.4-3.7 ms in one block, 7.5-7.9 ms in blocks of 5
    alternating with ORT's without the sleep, 3.75-4.0 ms with 0.2 s of it (the ORT/edgecv
    ratio 0.91 either way, as in one block each)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    results: list[list[Any]] = [[] for _ in fns]
    while len(samples[0]) < repeat:
        n = min(block, repeat - len(samples[0]))
        for fn, own, got in zip(fns, samples, results, strict=True):
            if len(fns) > 1:
                time.sleep(settle_s)  # the other side's spinning threads go to sleep
                fn()
            for _ in range(n):
                t0 = time.perf_counter()
                r = fn()
                own.append((time.perf_counter() - t0) * 1e3)
                got.append(r)
    return [(_summary(own), got) for own, got in zip(samples, results, strict=True)]


def model_flops(onnx_path: str | os.PathLike[str]) -> int:
    """Floating-point operations of one inference (2 per multiply-add) of the convolutions
    and matrix products in an ONNX model, from its inferred shapes."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes: dict[str, list[int]] = {}
    for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        shapes[v.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.output[0] in shapes and node.input[1] in shapes:
            out, w = shapes[node.output[0]], shapes[node.input[1]]
            total += 2 * int(np.prod(out, dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
        elif node.op_type in ("Gemm", "MatMul") and node.output[0] in shapes:
            a = shapes.get(node.input[0], [])
            k = a[-1] if a else 0
            if node.op_type == "Gemm" and any(
                at.name == "transA" and at.i for at in node.attribute
            ):
                k = a[0]
            total += 2 * int(np.prod(shapes[node.output[0]], dtype=np.int64)) * int(k)
    return total


def peak_gflops(n: int = 2048, repeat: int = 5) -> float:
    """This machine's attainable single-precision GFLOP/s: the faster of two large GEMMs,
    NumPy's BLAS and oneDNN's (the library the artifacts call, when the runtime has it:
    OpenBLAS alone understates the peak that oneDNN's kernels then exceed)."""
    from .compile.profile import dnnl_dense_ms

    a = np.random.RandomState(0).rand(n, n).astype(np.float32)
    b = np.random.RandomState(1).rand(n, n).astype(np.float32)
    best = _time(lambda: a @ b, 1, repeat)["min_ms"]
    dnnl = dnnl_dense_ms(a, b, repeat)
    if dnnl is not None:
        best = min(best, dnnl)
    return 2 * n**3 / (best * 1e-3) / 1e9


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _PeakMemory:
    """Peak resident-set growth inside a ``with`` block (Linux; 0 where unavailable)."""

    def __enter__(self) -> _PeakMemory:
        try:  # reset the peak (VmHWM) to the current size
            Path("/proc/self/clear_refs").write_text("5")
            self.ok = True
        except OSError:
            self.ok = False
        self.base = _rss_kib("VmRSS")
        self.mib = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ok:
            self.mib = max(0, _rss_kib("VmHWM") - self.base) / 1024


def _artifact_mib(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.iterdir() if f.is_file()) / 2**20


def bench_artifact(
    artifact_dir: str | os.PathLike[str],
    warmup: int = 2,
    repeat: int = 10,
    threads: int = 2,
    peak: float | None = None,
    also: dict[str, str | os.PathLike[str]] | None = None,
    breakdown: bool = False,
) -> dict[str, Any]:
    """Time the artifact's network (preprocessed input → outputs) in edgecv and ORT.

    ``peak``: this machine's GFLOP/s (:func:`peak_gflops`); measured here if None.
    ``also``: more ONNX models of the same input (e.g. ORT's own int8 of the model) timed
    in ORT in the same blocks of runs; each one's timings go into the row under its name.
    ``breakdown``: add :func:`operator_breakdown` (profiled time per kind of operator).
    """
    import onnxruntime as ort

    from . import _runtime
    from .runtime import Predictor

    directory = Path(artifact_dir)
    doc = read_manifest(directory)
    shape = doc["inputs"][0]["shape"]
    x = np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32)
    onnx_path = directory / doc["files"]["onnx"]
    flops = model_flops(onnx_path)
    peak = peak_gflops() if peak is None else peak

    # memory: each side's growth while it loads and runs its first inference
    with _PeakMemory() as edge_mem:
        t0 = time.perf_counter()
        predictor = Predictor(directory)
        predictor.run_tensor(x)
        first_ms = (time.perf_counter() - t0) * 1e3
    with _PeakMemory() as ort_mem:
        t0 = time.perf_counter()
        session = ort_session(onnx_path, threads)
        session.run(None, {"data": x})
        ort_first_ms = (time.perf_counter() - t0) * 1e3
    extra = {name: ort_session(path, threads) for name, path in (also or {}).items()}

    # latency: blocks of 5 runs in turns, after a pause (see _time_in_blocks)
    _runtime.kernel_stats(reset=True)
    calls = 0

    def run_edgecv() -> dict[str, float]:
        nonlocal calls
        calls += 1
        return predictor.run_tensor(x).timings

    def ort_run(s: Any) -> Callable[[], Any]:
        return lambda: s.run(None, {"data": x})

    (edge, stages), (ref, _), *more = _time_in_blocks(
        [run_edgecv, ort_run(session), *map(ort_run, extra.values())], warmup, repeat, 5, 0.2
    )
    kernels = _runtime.kernel_stats(reset=True)
    network = sorted(t["inference_ms"] for t in stages)
    post = sorted(t["postprocess_ms"] for t in stages)
    edge["network_median_ms"] = statistics.median(network)
    edge["postprocess_median_ms"] = statistics.median(post)
    edge["first_run_ms"] = first_ms
    edge["peak_memory_mib"] = edge_mem.mib
    if kernels:  # per inference: time in the kernel library; the rest is TVM-generated code
        runs = calls
        library_ms = sum(k["total_ms"] for k in kernels.values()) / runs
        edge["kernel_library_ms"] = library_ms
        edge["kernel_calls"] = {name: k["calls"] // runs for name, k in kernels.items()}
        edge["tvm_code_ms"] = max(0.0, statistics.mean(network) - library_ms)

    ref["first_run_ms"] = ort_first_ms
    ref["peak_memory_mib"] = ort_mem.mib
    a = predictor.run_tensor(x).outputs[0]
    b = session.run(None, {"data": x})[0]
    more_fields = {"breakdown": operator_breakdown(directory, threads=threads)} if breakdown else {}
    return {
        **more_fields,
        **{name: timed for name, (timed, _) in zip(extra, more, strict=True)},
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
        "gflop": flops / 1e9,
        "edgecv_gflops": flops / 1e6 / edge["network_median_ms"],
        "onnxruntime_gflops": flops / 1e6 / ref["median_ms"],
        "machine_peak_gflops": peak,
        "kernels": doc.get("kernels", []),
        "compile_s": doc["report"].get("timings", {}),
        "artifact_mib": _artifact_mib(directory),
        "max_abs_diff": float(np.abs(a - b).max()),
        "output_scale": float(np.abs(b).max()),
        "machine": machine_info(),
        "versions": {"onnxruntime": ort.__version__, **doc["toolchain"]},
    }


def _artifact_weights(directory: Path, doc: dict[str, Any]) -> list[np.ndarray]:
    """The artifact's parameters in ``main``'s order (after the input), from its weights file."""
    data = (directory / doc["files"]["weights"]).read_bytes()
    return [
        np.frombuffer(data, np.dtype(p["dtype"]), int(np.prod(p["shape"], dtype=np.int64)),
                      p["offset"]).reshape(p["shape"])
        for p in doc.get("params", [])
    ]  # fmt: skip


def bench_on_board(
    artifact_dir: str | os.PathLike[str],
    rpc: str,
    key: str,
    number: int = 10,
    repeat: int = 3,
) -> dict[str, Any]:
    """Time an artifact's network on a board of a TVM RPC tracker (``edgecv bench --rpc``).

    What is timed: the artifact's compiled library (``model.so``), uploaded to a board with
    ``key`` and its ``main`` run there in TVM's Relax VM, by TVM's remote time evaluator
    (``repeat`` means of ``number`` runs each, measured on the board: no network round trip),
    with the artifact's weights as arguments and the kernel-library calls the library makes
    served by edgecv's kernels in the server process (``edgecv rpc server`` registers them).
    What is not: edgecv's C++ runtime itself (its Predictor, manifest and hash checks), image
    decoding and the pre/post-processing, which run around the network on a device. The
    board's outputs for a random input are compared with ONNX Runtime's here."""
    from .compile.rpc import parse_address, time_on_board

    directory = Path(artifact_dir)
    doc = read_manifest(directory)
    tracker = parse_address(rpc)
    shape = doc["inputs"][0]["shape"]
    x = np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32)
    timed = time_on_board(
        directory / doc["files"]["library"],
        [x],
        _artifact_weights(directory, doc),
        tracker,
        key,
        number,
        repeat,
    )
    ref = ort_session(directory / doc["files"]["onnx"], 1).run(None, {"data": x})[0]
    got = timed.pop("outputs")[0]
    return {
        "model": doc["model"]["name"],
        "target": doc["target"]["name"],
        "precision": doc["precision"],
        "input_shape": shape,
        "board": {"tracker": rpc, "key": key, "threads": timed.pop("board_threads")},
        "network_on_board": timed,
        "timed": "model.so's main in TVM's Relax VM on the board (TVM time evaluator), "
        "weights as arguments, kernel-library calls by edgecv's kernels in the RPC server; "
        "not timed: edgecv's C++ runtime around it, image decoding, pre/post-processing",
        "max_abs_diff_vs_onnxruntime": float(np.abs(got - ref).max()),
        "output_scale": float(np.abs(ref).max()),
        "kernels": doc.get("kernels", []),
    }


def format_board_table(rows: list[dict[str, Any]]) -> str:
    """``edgecv bench --rpc``'s table: one row per artifact timed on a board."""
    lines = [
        f"{'model':28s} {'target':10s} {'precision':9s} {'board':18s} {'median ms':>10s} "
        f"{'min ms':>8s} {'vs ORT max|d|':>13s}"
    ]
    for r in rows:
        t = r["network_on_board"]
        board = f"{r['board']['key']} ({r['board']['threads']} thr)"
        lines.append(
            f"{r['model']:28s} {r['target']:10s} {r['precision']:9s} {board:18s} "
            f"{t['median_ms']:10.3f} {t['min_ms']:8.3f} {r['max_abs_diff_vs_onnxruntime']:13.2e}"
        )
    lines.append(
        "network only: the artifact's model.so run by TVM's VM on the board (remote time "
        "evaluator); edgecv's runtime, decoding and pre/post-processing are not in these times"
    )
    return "\n".join(lines)
