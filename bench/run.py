"""Benchmark zoo models: compile each for a target, then time the artifact (C++ runtime)
side by side with ONNX Runtime in this process. Writes JSON and prints a table.

    python bench/run.py --models resnet18_v1b mobilenetv2_1.0 --size 224 --json bench/results.json
    python bench/run.py --models resnet50_v1b --precisions fp32 int8 --calib-data DIR

int8 rows are compared with edgecv's fp32 artifact of the same model and with ONNX Runtime's own
int8 (static QDQ, calibrated on the same images), timed in the same blocks of runs.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from edgecv.bench import (
    bench_artifact,
    format_breakdown,
    format_int8_table,
    format_table,
    onnxruntime_int8,
    peak_gflops,
    write_report,
)
from edgecv.compile import CompileOptions, compile_model

REPO = Path(__file__).resolve().parents[1]


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
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="profile both sides of fp32 rows: time per kind of operator",
    )
    p.add_argument("--kernels", default="auto", help="auto | tvm | dnnl (see edgecv compile)")
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "int8"])
    p.add_argument(
        "--calib-data",
        default=str(REPO / "edgecv" / "data"),
        help="int8 calibration images (default: the sample images edgecv ships)",
    )
    args = p.parse_args()
    peak = peak_gflops()
    print(f"machine peak (2048² SGEMM): {peak:.0f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecv-bench-") as tmp:
        for model in args.models:
            fp32_row = None
            for precision in args.precisions:
                art = compile_model(
                    CompileOptions(
                        model=model,
                        target=args.target,
                        input_size=args.size,
                        out_dir=str(Path(tmp) / f"{model}-{precision}"),
                        kernels=args.kernels,
                        precision=precision,
                        calib_data=args.calib_data if precision == "int8" else None,
                    )
                )
                # int8: ORT's own int8 of the model timed in the same blocks of runs
                also = {} if precision == "fp32" else {"onnxruntime_int8": _ort_int8(art, args)}
                row = bench_artifact(
                    art,
                    warmup=1,
                    repeat=args.repeat,
                    threads=args.threads,
                    peak=peak,
                    also=also,
                    breakdown=args.breakdown and precision == "fp32",
                )
                for path in also.values():
                    path.unlink()
                if precision == "fp32":
                    fp32_row = row
                else:
                    _compare_int8(row, fp32_row)
                rows.append(row)
                shutil.rmtree(art)  # VGG bodies are ~100 MB each
                print(format_table(rows[-1:]), flush=True)
                if "breakdown" in row:
                    print(format_breakdown(row), flush=True)
    print()
    print(format_table(rows))
    if any(r["precision"] == "int8" for r in rows):
        print()
        print(format_int8_table(rows))
    write_report(rows, args.json)
    print(f"wrote {args.json}")


def _ort_int8(art: Path, args) -> Path:
    """ONNX Runtime's int8 (static QDQ) of the artifact's model, calibrated on the same images."""
    from edgecv import calibration
    from edgecv.artifact import read_manifest
    from edgecv.runtime import Predictor
    from edgecv.zoo import MODELS

    doc = read_manifest(art)
    predictor = Predictor(art)
    recipe = calibration.load_recipe(doc["model"]["name"], MODELS.get(doc["model"]["name"]).family)
    images = calibration.pick(calibration.find_images(args.calib_data), recipe.images)
    inputs = [predictor.preprocess(im)[1] for im in calibration.read_images(images)]
    qdq = art.parent / f"{art.name}-ort-int8.onnx"
    onnxruntime_int8(art / doc["files"]["onnx"], inputs, qdq)
    return qdq


def _compare_int8(row: dict, fp32_row: dict | None) -> None:
    """Ratios of the int8 row against ORT's int8 and edgecv's fp32."""
    edge = row["edgecv"]["network_median_ms"]
    row["speedup_vs_onnxruntime_int8"] = row["onnxruntime_int8"]["median_ms"] / edge
    if fp32_row is not None:
        row["edgecv_fp32_ms"] = fp32_row["edgecv"]["network_median_ms"]
        row["speedup_vs_edgecv_fp32"] = row["edgecv_fp32_ms"] / edge


if __name__ == "__main__":
    main()
