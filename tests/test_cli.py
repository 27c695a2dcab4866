"""The `edgecv` command line: outputs and documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE_IMAGE

pytestmark = pytest.mark.integration


def edgecv(*args, cwd=None):
    exe = Path(sys.executable).parent / "edgecv"  # the venv's console script, PATH or not
    assert exe.is_file(), "the edgecv console script is not installed"
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_list_and_targets():
    out = edgecv("list")
    assert (
        out.returncode == 0 and "resnet50_v1b" in out.stdout and "mobilenetv3_small" in out.stdout
    )
    out = edgecv("targets")
    assert out.returncode == 0 and "x86_64-avx512" in out.stdout


def test_unknown_model_and_target_exit_2():
    out = edgecv("compile", "resnet50_v1x")
    assert out.returncode == 2 and "did you mean" in out.stderr and "Traceback" not in out.stderr
    out = edgecv("compile", "resnet18_v1", "--target", "x86")
    assert out.returncode == 2 and "unknown target 'x86'" in out.stderr
    out = edgecv("compile", "resnet18_v1", "--target", "rpi4", "--fp16")
    assert out.returncode == 3 and "does not support precision 'fp16'" in out.stderr
    out = edgecv("compile", "resnet18_v1", "--int8", "--calib-data", "nowhere")
    assert out.returncode == 3 and "calibration data nowhere does not exist" in out.stderr
    out = edgecv("compile", "resnet18_v1", "--calib-data", "somewhere")
    assert out.returncode == 3 and "only apply with --int8" in out.stderr
    # XNNPACK has int8 kernels too (issue 20): accepted, then the missing data refused
    out = edgecv("compile", "resnet18_v1", "--int8", "--kernels", "xnnpack", "--calib-data", "d")
    assert out.returncode == 3 and "calibration data d does not exist" in out.stderr, out.stderr
    out = edgecv("compile", "resnet18_v1", "--target", "rpi4", "--kernels", "dnnl")
    assert out.returncode == 3 and "has no 'dnnl' kernels" in out.stderr, out.stderr


def test_run_info_bench(small_artifact, tmp_path):
    out = edgecv("run", small_artifact, SAMPLE_IMAGE, "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert len(res[0]["top"]) == 5 and res[0]["top"][0]["score"] >= res[0]["top"][1]["score"]

    out = edgecv("info", small_artifact)
    assert out.returncode == 0 and "resnet18_v1" in out.stdout and "tvm 0.27" in out.stdout

    report = tmp_path / "bench.json"
    out = edgecv("bench", small_artifact, "--repeat", "2", "--warmup", "1", "--json", report)
    assert out.returncode == 0, out.stderr
    row = json.loads(report.read_text())["results"][0]
    assert row["edgecv"]["median_ms"] > 0 and row["onnxruntime"]["median_ms"] > 0
    assert row["max_abs_diff"] < 1e-3
    assert row["edgecv"]["network_median_ms"] > 0 and row["edgecv"]["postprocess_median_ms"] >= 0


def test_bad_inputs_exit_codes(small_artifact, tmp_path):
    fake = tmp_path / "x.png"
    fake.write_bytes(b"nope")
    out = edgecv("run", small_artifact, fake)
    assert out.returncode == 3 and "cannot decode" in out.stderr
    out = edgecv("run", tmp_path / "no-artifact", SAMPLE_IMAGE)
    assert out.returncode == 4 and "no manifest" in out.stderr


def test_compile_refuses_to_overwrite_a_foreign_directory(tmp_path):
    victim = tmp_path / "mine"
    victim.mkdir()
    (victim / "notes.txt").write_text("keep me")
    out = edgecv("compile", "mobilenet0.25", "--input-size", "32", "--out", victim)
    assert out.returncode == 4 and "refusing to overwrite" in out.stderr
    assert (victim / "notes.txt").read_text() == "keep me"


@pytest.mark.parity
def test_export_command(tmp_path):
    out = edgecv("export", "mobilenet0.25", "--input-size", "32", "--out", tmp_path / "m.onnx")
    assert out.returncode == 0, out.stderr
    import onnx

    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in model.graph.input] == ["data"]  # initializers are not inputs
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.opset_import[0].version == 13


@pytest.mark.parity
def test_detection_run_draws_boxes(tmp_path):
    art = tmp_path / "yolo"
    out = edgecv("compile", "yolo3_mobilenet0.25_voc", "--input-size", "256", "--out", art)
    assert out.returncode == 0, out.stderr
    annotated = tmp_path / "annotated.jpg"
    out = edgecv(
        "run",
        art,
        SAMPLE_IMAGE,
        "--threshold",
        "0.0",
        "--max-detections",
        "7",
        "--out",
        annotated,
        "--json",
    )
    assert out.returncode == 0, out.stderr
    dets = json.loads(out.stdout)[0]["detections"]
    assert len(dets) == 7 and all(len(d["box"]) == 4 for d in dets)
    import cv2

    drawn, original = cv2.imread(str(annotated)), cv2.imread(str(SAMPLE_IMAGE))
    assert drawn.shape == original.shape and (drawn != original).any()
    out = edgecv("compile", "yolo3_mobilenet0.25_voc", "--input-size", "100")
    assert out.returncode == 3 and "multiples of 32" in out.stderr
