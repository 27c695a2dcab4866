"""The benchmark's output, from the rows :func:`edgecv.bench.bench_artifact` returns: the
text tables (latency, int8 comparison), the line naming the CPU and its ISA class, and the
JSON report. Formatting only: nothing here measures."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def isa_class(machine: dict[str, Any]) -> str:
    """The ISA class a result belongs to in BENCHMARKS.md: avx512-vnni, avx512, avx2-vnni,
    avx2, or the architecture."""
    flags = set(machine.get("isa_flags", []))
    if "avx512f" in flags:
        return "avx512-vnni" if "avx512_vnni" in flags else "avx512"
    if "avx2" in flags:
        return "avx2-vnni" if "avx_vnni" in flags else "avx2"
    return platform.machine()


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
