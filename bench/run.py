"""Benchmark zoo models: compile each for a target, then time the artifact (C++ runtime)
side by side with ONNX Runtime in this process. Writes JSON and prints a table.

    python bench/run.py --models resnet18_v1b mobilenetv2_1.0 --size 224 --json bench/results.json
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from edgecv.bench import bench_artifact, format_table, peak_gflops, write_report
from edgecv.compile import CompileOptions, compile_model


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--models", nargs="+", default=["resnet18_v1b", "resnet50_v1b", "mobilenetv2_1.0"]
    )
    p.add_argument("--target", default="x86_64")
    p.add_argument(
        "--size", type=int, default=None, help="square input side (default: each model's own)"
    )
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="bench/results.json")
    p.add_argument("--kernels", default="auto", help="auto | tvm | dnnl (see edgecv compile)")
    args = p.parse_args()
    peak = peak_gflops()
    print(f"machine peak (2048² SGEMM): {peak:.0f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecv-bench-") as tmp:
        for model in args.models:
            art = compile_model(
                CompileOptions(
                    model=model,
                    target=args.target,
                    input_size=args.size,
                    out_dir=str(Path(tmp) / model),
                    kernels=args.kernels,
                )
            )
            row = bench_artifact(art, warmup=1, repeat=args.repeat, threads=args.threads, peak=peak)
            rows.append(row)
            shutil.rmtree(art)  # VGG bodies are ~100 MB each
            print(format_table(rows[-1:]), flush=True)
    print()
    print(format_table(rows))
    write_report(rows, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
