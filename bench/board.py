"""Time compiled artifacts on the machine this runs on: a Raspberry Pi or a Jetson with only the
runtime-only wheel (NumPy + edgecv's runtime), or any x86 machine.

    python board.py ART_FP32 ART_INT8 [...] [--repeat 50] [--threads 4] [--json board.json]

Each artifact's network runs on one seeded random input of its manifest's shape
(``Predictor.run_tensor``: network and post-processing, no image decoding or preprocessing).
When ``onnxruntime`` is importable, ONNX Runtime's CPU build runs the ONNX model each artifact
carries (``model.onnx``: the float graph it was compiled from, int8 artifacts included; one
session per model and input size) on the same input in the same process, and any further ONNX model
given with ``--onnx LABEL=PATH`` (e.g. ORT's own static int8 of the model, made elsewhere). All
of them are timed in turns, in blocks of ``--block`` runs, so that a slow spell (a warm board
throttling, a background job) falls on every side alike. Prints a table and writes JSON: the
machine (CPU model and cores from /proc/cpuinfo, its ISA features such as ``asimddp``, the
board's model, clock governor, temperature before and after), the settings, per artifact and
ORT model median / p90 / min, and int8-vs-fp32 and edgecv-vs-ORT ratios per model.

It imports NumPy, edgecv's runtime and (optionally) onnxruntime only: never MXNet, TVM or ONNX,
which a board does not have. Exit codes: 0 success, 2 bad usage, 3 an unreadable ``--onnx``
model, 4 an artifact that cannot be opened here (missing, corrupted, or built for another
machine: the message says which)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = "edgecv.board-bench"
SCHEMA_VERSION = 1
# features worth a column: dot product (asimddp), fp16 arithmetic (fphp/asimdhp), int8 matrix
# multiply (i8mm), SVE on ARM; the AVX/VNNI levels on x86
ISA_FEATURES = (
    "asimd", "asimddp", "fphp", "asimdhp", "i8mm", "bf16", "sve", "sve2",
    "sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
    "amx_int8",
)  # fmt: skip
# ARM's "CPU part" numbers (implementer 0x41) of the cores edgecv targets and their neighbours
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710",
    "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4f": "Neoverse-V2",
}  # fmt: skip


class BoardBenchError(Exception):
    """A bad argument or artifact; ``code`` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPU model (x86 ``model name``, or ARM's implementer
    and part decoded to a core name), the ISA features of interest among /proc/cpuinfo's
    flags, the board's model (device tree), cores, clock governor and temperature."""
    cpuinfo = _read("/proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    parts = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        fields.setdefault(key, value)
        if key == "CPU part":
            parts.add(value)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    if "model name" in fields:
        cpu = fields["model name"]
    elif parts:  # ARM: one name per kind of core (big.LITTLE boards have two)
        cpu = " + ".join(ARM_PARTS.get(p, f"ARM part {p}") for p in sorted(parts))
    else:
        cpu = platform.processor() or "unknown"
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return {
        "hostname": socket.gethostname(),
        "machine": platform.machine(),
        "board": _read("/proc/device-tree/model") or fields.get("Model"),
        "cpu_model": cpu,
        "isa_features": [f for f in ISA_FEATURES if f in flags],
        "cpu_flags": sorted(flags),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpufreq_governor": governor,
        "cpu_max_mhz": int(max_khz) / 1000 if max_khz and max_khz.isdigit() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _temperature_c() -> float | None:
    """The first thermal zone's temperature (the SoC's on a Raspberry Pi), or None."""
    raw = _read("/sys/class/thermal/thermal_zone0/temp")
    return int(raw) / 1000 if raw and raw.lstrip("-").isdigit() else None


def _summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "median_ms": statistics.median(s),
        "p90_ms": s[min(len(s) - 1, int(0.9 * len(s)))],
        "min_ms": s[0],
        "runs": len(s),
    }


def time_in_turns(
    fns: list[Callable[[], Any]], warmup: int, repeat: int, block: int, settle_s: float
) -> list[list[float]]:
    """Milliseconds of ``repeat`` runs of each function, timed in turns of ``block`` runs
    (a×block, b×block, a×block, ...), each turn after ``settle_s`` of sleep (the other side's
    thread pool stops spinning) and one untimed run."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    while len(samples[0]) < repeat:
        n = min(block, repeat - len(samples[0]))
        for fn, own in zip(fns, samples, strict=True):
            if len(fns) > 1:
                time.sleep(settle_s)
                fn()
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                own.append((time.perf_counter() - t0) * 1e3)
    return samples


def _open_artifact(path: Path) -> tuple[Any, dict[str, Any]]:
    from edgecv.errors import EdgecvError
    from edgecv.runtime import Predictor

    if not (path / "manifest.json").is_file():
        raise BoardBenchError(f"{path}: not an artifact directory (no manifest.json)", 4)
    try:
        predictor = Predictor(path)  # checks the manifest, every file's sha256, CPU features
    except EdgecvError as err:
        raise BoardBenchError(f"{path}: {err}", 4) from None
    return predictor, json.loads((path / "manifest.json").read_text())


def _ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(
    artifacts: list[Path],
    extra_onnx: dict[str, Path],
    warmup: int,
    repeat: int,
    block: int,
    threads: int,
    use_onnxruntime: bool,
    settle_s: float = 0.2,
) -> dict[str, Any]:
    """Open every artifact (and ORT session), time them all in turns, return the report."""
    import numpy as np

    from edgecv import __version__, _runtime

    opened = [(path, *_open_artifact(path)) for path in artifacts]
    ort = None
    why_no_ort = None
    if use_onnxruntime:
        try:
            import onnxruntime as ort
        except ImportError as err:
            why_no_ort = f"onnxruntime is not importable here ({err})"
    else:
        why_no_ort = "--no-onnxruntime"
    if extra_onnx and ort is None:
        raise BoardBenchError(f"--onnx needs onnxruntime: {why_no_ort}", 2)

    inputs: dict[str, np.ndarray] = {}  # one seeded input per shape: the same for every side
    rows: list[dict[str, Any]] = []
    fns: list[Callable[[], Any]] = []
    # one ORT session per model and input shape: the artifacts of one model carry the same
    # float graph (their model.onnx files differ only in MXNet's layer-name counters); the
    # artifacts' max |Δ| against it shows it if they do not
    sessions: dict[Any, dict[str, Any]] = {}
    for path, predictor, doc in opened:
        shape = tuple(doc["inputs"][0]["shape"])
        x = inputs.setdefault(
            "x".join(map(str, shape)),
            np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32),
        )
        t0 = time.perf_counter()
        first = predictor.run_tensor(x)
        first_ms = (time.perf_counter() - t0) * 1e3
        network: list[float] = []

        def run_edgecv(p: Any = predictor, x: np.ndarray = x, network: list = network) -> Any:
            r = p.run_tensor(x)
            network.append(r.timings["inference_ms"])
            return r

        rows.append(
            {
                "engine": "edgecv",
                "artifact": str(path),
                "model": doc["model"]["name"],
                "target": doc["target"]["name"],
                "precision": doc["precision"],
                "kernels": doc.get("kernels", []),
                "input_shape": list(shape),
                "first_run_ms": first_ms,
                "_network": network,
                "_output": np.asarray(first.outputs[0]),
            }
        )
        fns.append(run_edgecv)
        onnx = path / doc["files"]["onnx"] if "onnx" in doc.get("files", {}) else None
        if ort is not None and onnx is not None:
            sessions.setdefault(
                (doc["model"]["name"], shape),
                {"label": f"{doc['model']['name']} model.onnx", "path": onnx, "shape": shape,
                 "model": doc["model"]["name"], "precision": "fp32", "of": []},
            )["of"].append(len(rows) - 1)  # fmt: skip
    for label, path in extra_onnx.items():
        shapes = {tuple(r["input_shape"]) for r in rows}
        sessions[label] = {"label": label, "path": path, "shape": None, "model": None,
                           "precision": label, "of": [], "extra": True}  # fmt: skip
        if len(shapes) == 1:
            sessions[label]["shape"] = next(iter(shapes))
    for entry in sessions.values():
        try:
            session = _ort_session(entry["path"], threads)
        except Exception as err:  # ORT's own exception types differ between versions
            raise BoardBenchError(
                f"{entry['path']}: ONNX Runtime cannot load it: {err}", 3
            ) from None
        meta = session.get_inputs()[0]
        shape = entry["shape"] or tuple(meta.shape)
        if not all(isinstance(d, int) for d in shape):
            raise BoardBenchError(f"{entry['path']}: input shape {meta.shape} is not fixed", 3)
        x = inputs.setdefault(
            "x".join(map(str, shape)),
            np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32),
        )
        feed = {meta.name: x}
        t0 = time.perf_counter()
        out = session.run(None, feed)[0]
        first_ms = (time.perf_counter() - t0) * 1e3
        rows.append(
            {
                "engine": "onnxruntime",
                "onnx": str(entry["path"]),
                "label": entry["label"],
                "extra": entry.get("extra", False),
                "model": entry["model"] or rows[0]["model"],
                "precision": entry["precision"],
                "input_shape": list(shape),
                "first_run_ms": first_ms,
            }
        )
        for i in entry["of"]:  # the artifact's outputs against ORT's on the same input
            rows[i]["max_abs_diff_vs_onnxruntime_fp32"] = float(
                np.abs(rows[i]["_output"] - out).max()
            )
            rows[i]["output_scale"] = float(np.abs(out).max())
        fns.append(lambda s=session, f=feed: s.run(None, f))

    temp_before = _temperature_c()
    started = time.time()
    samples = time_in_turns(fns, warmup, repeat, block, settle_s)
    elapsed = time.time() - started
    for row, own in zip(rows, samples, strict=True):
        row.update(_summary(own))
        row.pop("_output", None)
        network = row.pop("_network", None)
        if network:  # the C++ runtime's own network time (no post-processing, no Python call)
            row["network_median_ms"] = statistics.median(network)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "machine": {
            **machine_info(),
            "temperature_c": {"before": temp_before, "after": _temperature_c()},
        },
        "settings": {
            "warmup": warmup, "repeat": repeat, "block": block, "threads": threads,
            "settle_s": settle_s, "timed_s": elapsed,
            "input": "uniform(-2, 2) float32, seed 0, the manifest's input shape",
            "timed": "edgecv: Predictor.run_tensor (network + post-processing; "
                     "network_median_ms is the runtime's own network time); "
                     "onnxruntime: InferenceSession.run on the ONNX model",
        },
        "versions": {
            "edgecv": __version__, "numpy": np.__version__,
            "onnxruntime": getattr(ort, "__version__", None),
            "kernel_libraries": list(_runtime.kernel_libraries()),
        },
        "onnxruntime": None if why_no_ort is None else {"skipped": why_no_ort},
        "results": rows,
        "comparisons": comparisons(rows),
    }  # fmt: skip


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and target: int8 (and fp16) against fp32 of edgecv, and each edgecv artifact
    against ONNX Runtime's float model and each ``--onnx`` model of its input shape, as ratios
    of medians (> 1: the first is faster)."""
    edge = [r for r in rows if r["engine"] == "edgecv"]
    ort = {r["model"]: r for r in rows if r["engine"] == "onnxruntime" and not r.get("extra")}
    extra = [r for r in rows if r.get("extra")]
    out = []
    for r in edge:
        base = next(
            (f for f in edge if f["precision"] == "fp32" and f["model"] == r["model"]
             and f["target"] == r["target"]), None,
        )  # fmt: skip
        if r["precision"] != "fp32" and base is not None:
            out.append(
                {"model": r["model"], "target": r["target"], "compare": f"{r['precision']} vs fp32",
                 "speedup": base["median_ms"] / r["median_ms"]}
            )  # fmt: skip
        if r["model"] in ort:
            out.append(
                {"model": r["model"], "target": r["target"],
                 "compare": f"edgecv {r['precision']} vs onnxruntime fp32",
                 "speedup": ort[r["model"]]["median_ms"] / r["network_median_ms"]}
            )  # fmt: skip
        for o in extra:  # --onnx models (e.g. ORT's own int8) of the same input
            if o["input_shape"] == r["input_shape"]:
                out.append(
                    {"model": r["model"], "target": r["target"],
                     "compare": f"edgecv {r['precision']} vs onnxruntime {o['label']}",
                     "speedup": o["median_ms"] / r["network_median_ms"]}
                )  # fmt: skip
    return out


def format_report(report: dict[str, Any]) -> str:
    """The table printed at the end of a run."""
    m = report["machine"]
    temp = m["temperature_c"]
    lines = [
        f"machine: {m['board'] or m['hostname']} · {m['cpu_model']} · {m['cpu_count']} cores · "
        f"{' '.join(m['isa_features']) or 'no listed ISA features'}",
        f"governor {m['cpufreq_governor'] or '-'} · temperature {temp['before']} -> "
        f"{temp['after']} °C · {report['settings']['threads']} threads · "
        f"{report['settings']['repeat']} runs each",
    ]
    head = f"{'engine':<12} {'model':<26} {'target':<16} {'precision':<9} {'median ms':>9} {'p90 ms':>8} {'min ms':>8} {'net ms':>8}"  # noqa: E501
    lines += [head, "-" * len(head)]
    for r in report["results"]:
        net = r.get("network_median_ms")
        lines.append(
            f"{r['engine']:<12} {r['model']:<26} {r.get('target', '-'):<16} {r['precision']:<9} "
            f"{r['median_ms']:>9.3f} {r['p90_ms']:>8.3f} {r['min_ms']:>8.3f} "
            f"{'-' if net is None else f'{net:.3f}':>8}"
        )
    for c in report["comparisons"]:
        lines.append(
            f"{c['model']} ({c['target']}): {c['compare']}: the first {c['speedup']:.2f}x as fast"
        )
    if report["onnxruntime"]:
        lines.append(f"ONNX Runtime not timed: {report['onnxruntime']['skipped']}")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifacts", nargs="+", type=Path, help="artifact directories")
    ap.add_argument("--onnx", action="append", default=[], metavar="LABEL=PATH",
                    help="a further ONNX model for ONNX Runtime (e.g. its own int8)")  # fmt: skip
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=50, help="timed runs of each")
    ap.add_argument("--block", type=int, default=10, help="runs per turn")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--no-onnxruntime", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="default: board-<host>.json")
    args = ap.parse_args(argv)
    for name in ("warmup", "repeat", "block", "threads"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            ap.error(f"--{name} must be >= {0 if name == 'warmup' else 1}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    extra = {}
    for item in args.onnx:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            print(f"board.py: --onnx takes LABEL=PATH, got {item!r}", file=sys.stderr)
            return 2
        if not Path(path).is_file():
            print(f"board.py: --onnx {label}: no such file {path}", file=sys.stderr)
            return 3
        extra[label] = Path(path)
    # the thread counts are read when the runtime's pools start: set them before the import
    os.environ["EDGECV_NUM_THREADS"] = os.environ["TVM_NUM_THREADS"] = str(args.threads)
    try:
        report = run(
            args.artifacts, extra, args.warmup, args.repeat, args.block, args.threads,
            not args.no_onnxruntime,
        )  # fmt: skip
    except BoardBenchError as err:
        print(f"board.py: {err}", file=sys.stderr)
        return err.code
    out = args.json or Path(f"board-{socket.gethostname()}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
