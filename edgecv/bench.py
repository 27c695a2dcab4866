"""Latency of a compiled artifact (C++ runtime) next to ONNX Runtime on the same ONNX
model, in one process, with the same input. Writes JSON and prints a table.

Per artifact: warm latency (median, p90) of both, their ratio, achieved GFLOP/s and the
fraction of this machine's peak (a large single-precision GEMM timed in the same process),
first-run latency (load + first inference), compile time, artifact size, the memory the
artifact takes (peak resident growth while loading and running it), and for offloaded
artifacts the time spent in the kernel library vs TVM-generated code; on request, a profiled
breakdown of both sides' time by kind of operator (:func:`operator_breakdown`)."""

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

# CPU flags that decide which kernels run (x86: oneDNN's and ORT's MLAS paths; ARM: NEON dot
# products and fp16)
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


def isa_class(machine: dict[str, Any]) -> str:
    """The ISA class a result belongs to in BENCHMARKS.md: avx512-vnni, avx512, avx2-vnni,
    avx2, or the architecture."""
    flags = set(machine.get("isa_flags", []))
    if "avx512f" in flags:
        return "avx512-vnni" if "avx512_vnni" in flags else "avx512"
    if "avx2" in flags:
        return "avx2-vnni" if "avx_vnni" in flags else "avx2"
    return platform.machine()


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
        session = _ort_session(onnx_path, threads)
        session.run(None, {"data": x})
        ort_first_ms = (time.perf_counter() - t0) * 1e3
    extra = {name: _ort_session(path, threads) for name, path in (also or {}).items()}

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


def _conv_kind(kh: int, kw: int, depthwise: bool) -> str:
    if depthwise:
        return "depthwise conv"
    return "conv 1x1" if kh == kw == 1 else "conv kxk"


def _edgecv_kind(name: str, shapes: list[tuple[int, ...]]) -> str:
    """The operator kind of one call of the VM (its name and its tensor arguments' shapes):
    a kernel-library layer by its weights, a runtime builtin, or a TVM-generated function by
    its name."""
    if name.startswith("edgecv.") and ".conv2d" in name:
        w = shapes[1]  # G x O/G x I/G x KH x KW
        if "transpose" in name:
            return "transposed conv"
        return _conv_kind(int(w[3]), int(w[4]), int(w[0]) > 1 and int(w[2]) == 1)
    if name.startswith("edgecv.") and ".dense" in name:
        return "dense"
    if name.startswith("edgecv.") and ".pool" in name:
        return "pooling"
    if name.startswith("vm.builtin."):
        return "runtime (allocation, checks)"
    if "pool" in name or name.startswith(("max", "mean", "avg")):
        return "pooling (TVM)"
    if "resize" in name or "upsampl" in name or "image" in name:
        return "resize (TVM)"
    return "other (TVM)"


def _onnxruntime_kind(op: str, shapes: list[Any]) -> str:
    if op in ("Conv", "FusedConv", "NchwcConv") and len(shapes) > 1:
        w = list(shapes[1].values())[0] if isinstance(shapes[1], dict) else shapes[1]
        depthwise = len(w) == 4 and int(w[1]) == 1 and int(w[2]) > 1
        return _conv_kind(int(w[2]), int(w[3]), depthwise) if len(w) == 4 else "conv kxk"
    if op in ("ConvTranspose",):
        return "transposed conv"
    if op in ("Gemm", "MatMul", "FusedGemm", "FusedMatMul"):
        return "dense"
    if "Pool" in op:
        return "pooling"
    if op in ("Resize", "Upsample"):
        return "resize"
    if op in ("ReorderInput", "ReorderOutput"):
        return "layout reorders"
    return "other"


def operator_breakdown(
    artifact_dir: str | os.PathLike[str], runs: int = 10, threads: int = 2
) -> dict[str, Any]:
    """Where one inference goes, by kind of operator, in edgecv and in ONNX Runtime, on the
    same input: edgecv through TVM's VM with a timer around every call it makes (kernel
    layers by their weights' shape, TVM-generated functions, runtime builtins); ONNX Runtime
    through its profiler (kernel time per node, its fused nodes by their weights' shape).
    The two sides run one inference each in turn. Per kind: the median over ``runs``
    inferences of its time in one inference, and its calls per inference. Both add their
    own instrumentation cost."""
    from .compile.profile import profile_vm_calls

    directory = Path(artifact_dir)
    doc = read_manifest(directory)
    shape = doc["inputs"][0]["shape"]
    x = np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32)
    blob = (directory / doc["files"]["weights"]).read_bytes()
    params = [
        np.frombuffer(blob, e["dtype"], int(np.prod(e["shape"])), e["offset"]).reshape(e["shape"])
        for e in doc["params"]
    ]
    session = _ort_session(
        directory / doc["files"]["onnx"],
        threads,
        profile=Path(os.environ.get("TMPDIR", "/tmp")) / "edgecv-ort-profile",
    )

    def ort_in_turn() -> None:
        # a pause for the other side's spinning threads before and after ORT's inference
        time.sleep(0.05)
        session.run(None, {"data": x})
        time.sleep(0.05)

    # one inference each in turn, so that a slow spell of the machine falls on both; the
    # first of each warms up
    edge: list[dict[str, list[float]]] = []  # per run: kind -> [ms, calls]
    for calls in profile_vm_calls(
        directory / doc["files"]["library"], [x, *params], runs, ort_in_turn
    ):
        edge.append({})
        for name, shapes, ms in calls:
            entry = edge[-1].setdefault(_edgecv_kind(name, shapes), [0.0, 0])
            entry[0] += ms
            entry[1] += 1
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(nodes) // (runs + 1)
    theirs: list[dict[str, list[float]]] = [{} for _ in range(runs)]
    for i, e in enumerate(nodes[per_run : per_run * (runs + 1)]):  # the first run warms up
        a = e.get("args", {})
        kind = _onnxruntime_kind(a.get("op_name", ""), a.get("input_type_shape", []))
        entry = theirs[i // per_run].setdefault(kind, [0.0, 0])
        entry[0] += e["dur"] / 1e3
        entry[1] += 1

    def per_inference(per_run: list[dict[str, list[float]]]) -> dict[str, dict[str, float]]:
        kinds = {k for run in per_run for k in run}
        out = {
            k: {
                "ms": round(statistics.median(run.get(k, [0.0, 0])[0] for run in per_run), 4),
                "calls": int(per_run[-1].get(k, [0.0, 0])[1]),
            }
            for k in kinds
        }
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["ms"]))

    return {"edgecv": per_inference(edge), "onnxruntime": per_inference(theirs), "runs": runs}


def format_breakdown(row: dict[str, Any]) -> str:
    """One model's breakdown as a table: kind, edgecv ms (calls), ORT ms (calls)."""
    b = row["breakdown"]
    kinds = list(dict.fromkeys([*b["edgecv"], *b["onnxruntime"]]))
    lines = [
        f"{row['model']}: where the time goes (profiled, ms per inference)",
        f"  {'operator':30s} {'edgecv':>16s} {'ONNX Runtime':>16s}",
    ]
    for k in kinds:
        cells = []
        for side in ("edgecv", "onnxruntime"):
            e = b[side].get(k)
            cells.append(f"{e['ms']:8.3f} ({e['calls']:3d})" if e else f"{'-':>16s}")
        lines.append(f"  {k:30s} {cells[0]:>16s} {cells[1]:>16s}")
    tot = [sum(e["ms"] for e in b[side].values()) for side in ("edgecv", "onnxruntime")]
    lines.append(f"  {'total':30s} {tot[0]:16.3f} {tot[1]:16.3f}")
    return "\n".join(lines)


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


def _ort_session(
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


def format_machine(machine: dict[str, Any]) -> str:
    """One line naming the CPU a table was measured on and its ISA class."""
    return (
        f"CPU: {machine.get('cpu_model', 'unknown')} ({isa_class(machine)}; oneDNN "
        f"{machine.get('onednn_isa') or 'absent'}, int8 weights {machine.get('int8_weight_bits') or '-'} bits; "
        f"{machine.get('cpu_count')} threads available)"
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'model':<26} {'input':<14} {'kernels':<7} {'edgecv ms':>9} {'p90':>7} {'post ms':>7} "
        f"{'ORT ms':>8} {'ORT/edgecv':>10} {'GFLOP/s':>7} {'%peak':>5} {'1st ms':>7} {'MiB':>6} "
        f"{'ORT MiB':>7} {'max|Δ|/scale':>12}"
    )
    machines = {format_machine(r["machine"]) for r in rows if "machine" in r}
    lines = [*sorted(machines), head, "-" * len(head)]
    for r in rows:
        e = r["edgecv"]
        lines.append(
            f"{r['model']:<26} {'x'.join(map(str, r['input_shape'][1:])):<14} "
            f"{'+'.join(r.get('kernels', [])) or 'tvm':<7} "
            f"{e['network_median_ms']:>9.2f} {e['p90_ms']:>7.1f} {e['postprocess_median_ms']:>7.2f} "
            f"{r['onnxruntime']['median_ms']:>8.2f} {r['speedup_vs_onnxruntime']:>10.3f} "
            f"{r.get('edgecv_gflops', 0):>7.0f} "
            f"{100 * r.get('edgecv_gflops', 0) / max(r.get('machine_peak_gflops', 1), 1e-9):>5.0f} "
            f"{e.get('first_run_ms', 0):>7.0f} {e.get('peak_memory_mib', 0):>6.0f} "
            f"{r['onnxruntime'].get('peak_memory_mib', 0):>7.0f} "
            f"{r['max_abs_diff'] / max(r['output_scale'], 1e-30):>12.2e}"
        )
    return "\n".join(lines)


def format_int8_table(rows: list[dict[str, Any]]) -> str:
    """int8 rows: edgecv int8 against edgecv fp32 and ONNX Runtime's int8 (QDQ)."""
    head = (
        f"{'model':<26} {'int8 ms':>8} {'fp32 ms':>8} {'fp32/int8':>9} "
        f"{'ORT int8 ms':>11} {'ORT int8/edgecv int8':>20}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["precision"] != "int8":
            continue
        fp32 = r.get("edgecv_fp32_ms")
        lines.append(
            f"{r['model']:<26} {r['edgecv']['network_median_ms']:>8.2f} "
            f"{fp32 if fp32 is not None else float('nan'):>8.2f} "
            f"{r.get('speedup_vs_edgecv_fp32', float('nan')):>9.2f} "
            f"{r['onnxruntime_int8']['median_ms']:>11.2f} {r['speedup_vs_onnxruntime_int8']:>20.3f}"
        )
    return "\n".join(lines)


def write_report(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    Path(path).write_text(json.dumps({"results": rows}, indent=2) + "\n")
