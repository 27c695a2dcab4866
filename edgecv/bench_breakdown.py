"""Where one inference's time goes, by kind of operator, in edgecv and in ONNX Runtime
(``edgecv bench --breakdown``): edgecv's side through the VM profiler of the compile
package (:func:`edgecv.compile.profile.profile_vm_calls`; TVM's API stays there), ONNX
Runtime's through its own profiler, each call sorted into the same kinds; and the table
that prints it."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import read_manifest
from .bench_onnxruntime import ort_session


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
    session = ort_session(
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
