"""CUDA artifacts on a real GPU: parity with ONNX Runtime (CPU) and latency. Run it on a
machine with an NVIDIA GPU (desktop, server or a Jetson), from the repository root:

    pip install --no-build-isolation -C cmake.define.EDGECV_WITH_CUDA=ON .   # runtime with CUDA
    python bench/cuda_parity.py                       # GPU detected with nvidia-smi
    python bench/cuda_parity.py --arch jetson-orin --artifacts artifacts/*-cuda-jetson-orin-fp32

It compiles each model for `--target cuda --arch ARCH` (or takes ready artifacts), runs every
output through the C++ runtime on the GPU and through ONNX Runtime on the CPU with the same
preprocessed inputs (the sample image and a random tensor), requires max |Δ| ≤ rtol × output
scale, times the network, and writes bench/results-cuda-<arch>.json. Exit code 5 if any
parity check fails.

The wheel's libtvm_runtime_cuda.so links the CUDA 13 runtime (libcudart.so.13) and needs a
driver that supports CUDA 13; a device on an older CUDA (JetPack 5/6) needs a TVM runtime
built from source against its own CUDA (point EDGECV_TVM_LIB_DIR at it).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgecv.artifact import read_manifest
from edgecv.bench import bench_artifact
from edgecv.compile import CompileOptions, compile_model
from edgecv.errors import ArtifactError
from edgecv.runtime import Predictor, read_image
from edgecv.targets import get_target

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ["resnet18_v1:224", "mobilenetv2_1.0:224", "yolo3_mobilenet0.25_voc:320"]


def gpu() -> dict[str, str]:
    """Name, compute capability and driver of GPU 0 (nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        sys.exit("cuda_parity: nvidia-smi not found: this machine has no NVIDIA driver")
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name, cap, driver = (s.strip() for s in out.splitlines()[0].split(","))
    return {"name": name, "compute_capability": cap, "driver": driver}


def arch_for(capability: str) -> str:
    """The cuda target's --arch for a compute capability like "9.0"."""
    sm = "sm_" + capability.replace(".", "")
    names = [a.name for a in get_target("cuda").archs if a.sm == sm]
    if not names:
        sys.exit(f"cuda_parity: no --arch in targets/cuda.toml for {sm}; add one or pass --arch")
    return names[0]


def parity(artifact: Path, rtol: float) -> dict[str, float | bool]:
    import onnxruntime as ort

    doc = read_manifest(artifact)
    predictor = Predictor(artifact)
    session = ort.InferenceSession(
        str(artifact / doc["files"]["onnx"]), providers=["CPUExecutionProvider"]
    )
    _, image_tensor, _ = predictor.preprocess(read_image(REPO / "edgecv" / "data" / "chelsea.jpg"))
    shape = doc["inputs"][0]["shape"]
    random_tensor = np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32)
    worst = {"max_abs_diff": 0.0, "output_scale": 0.0, "relative": 0.0}
    for x in (image_tensor, random_tensor):
        got = predictor.run_tensor(x).outputs
        expected = session.run(None, {"data": x})
        for g, e in zip(got, expected, strict=True):
            err, scale = float(np.abs(g - e).max()), float(np.abs(e).max()) or 1.0
            if err / scale >= worst["relative"]:
                worst = {"max_abs_diff": err, "output_scale": scale, "relative": err / scale}
    return {**worst, "rtol": rtol, "ok": worst["relative"] <= rtol}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", help="the cuda target's --arch (default: GPU 0's, by nvidia-smi)")
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="MODEL[:INPUT_SIZE]")
    p.add_argument("--artifacts", nargs="+", type=Path, help="ready CUDA artifacts (no compile)")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--json", help="default: bench/results-cuda-<arch>.json")
    args = p.parse_args()

    device = gpu()
    arch = args.arch or arch_for(device["compute_capability"])
    try:
        ctypes.CDLL("libcudart.so.13")
    except OSError:
        print("cuda_parity: warning: libcudart.so.13 (CUDA 13 runtime) is not on the library "
              "path; the wheel's libtvm_runtime_cuda.so needs it", file=sys.stderr)  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecv-cuda-") as tmp:
        artifacts = args.artifacts or []
        for spec in [] if args.artifacts else args.models:
            model, _, size = spec.partition(":")
            artifacts.append(
                compile_model(
                    CompileOptions(
                        model=model,
                        target="cuda",
                        arch=arch,
                        input_size=int(size) if size else None,
                        out_dir=str(Path(tmp) / model),
                    )
                )
            )
        for art in artifacts:
            try:
                check = parity(art, args.rtol)
            except ArtifactError as err:
                sys.exit(f"cuda_parity: {err}")
            row = bench_artifact(art, warmup=5, repeat=args.repeat)
            rows.append(
                {
                    "model": row["model"],
                    "input_shape": row["input_shape"],
                    "gpu_network_median_ms": row["edgecv"]["network_median_ms"],
                    "gpu_call_p90_ms": row["edgecv"]["p90_ms"],  # run_tensor, copies included
                    "onnxruntime_cpu_median_ms": row["onnxruntime"]["median_ms"],
                    "parity": check,
                    "device_code": read_manifest(art)["report"].get("device_code"),
                }
            )
            r = rows[-1]
            print(
                f"{r['model']:<26} {'x'.join(map(str, r['input_shape'])):<14} "
                f"GPU {r['gpu_network_median_ms']:8.3f} ms   ORT-CPU "
                f"{r['onnxruntime_cpu_median_ms']:8.2f} ms   max|Δ|/scale "
                f"{check['relative']:.2e} {'ok' if check['ok'] else 'FAIL'}",
                flush=True,
            )
    out = Path(args.json or REPO / "bench" / f"results-cuda-{arch}.json")
    report = {"device": device, "arch": arch, "host": platform.platform(), "results": rows}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    sys.exit(0 if all(r["parity"]["ok"] for r in rows) else 5)


if __name__ == "__main__":
    main()
