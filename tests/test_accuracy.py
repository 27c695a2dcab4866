"""Accuracy parity on real data: the shipped digits models, float (MXNet) vs compiled (C++
runtime), scored by the same evaluation code on held-out digits."""

from __future__ import annotations

import json

import pytest

from edgecv.cli import main
from edgecv.datasets import ImageFolder, VOCDetection
from edgecv.evaluate import ArtifactModel, FloatModel, evaluate
from edgecv.zoo import get_model, shipped_weights

from conftest import remeasure_int8_gate

pytestmark = pytest.mark.parity

DETECTION_IMAGES = 40  # untuned TVM code is slow; a subset keeps CI short
# layers the gate keeps int8 in the detector (of 50; 3 output convs float by recipe): 47 when
# only 8-bit weights are scored; 7-bit weights (CPUs without VNNI) need more in float
LAYERS_INT8_MIN = 30


@pytest.fixture(scope="module")
def digits_full(tmp_path_factory):
    from edgecv.datasets.digits import generate

    return generate(
        tmp_path_factory.mktemp("digits-full") / "d",
        seed=0,
        train_per_scan=0,
        scenes=(0, DETECTION_IMAGES),
    )


def _compile(name, tmp_path):
    from edgecv.compile import CompileOptions, compile_model

    return compile_model(CompileOptions(model=name, out_dir=str(tmp_path / name)))


def test_weights_are_shipped():
    for name in ("mobilenet0.25_digits", "yolo3_mobilenet0.25_digits"):
        assert shipped_weights(name) is not None, name


def test_digits_classifier_float_vs_compiled(tmp_path, digits_full):
    val = ImageFolder(digits_full / "classification" / "val")
    art = _compile("mobilenet0.25_digits", tmp_path)
    assert (
        json.loads((art / "manifest.json").read_text())["model"]["weights"]
        == "edgecv:mobilenet0.25_digits.params"
    )
    ref = evaluate(FloatModel(get_model("mobilenet0.25_digits")), val)
    got = evaluate(ArtifactModel(art), val)
    assert ref["images"] == got["images"] == 359
    assert ref["top1"] >= 0.97  # the trained model, on scans it never saw
    assert abs(got["top1"] - ref["top1"]) <= 0.005


def test_digits_detector_float_vs_compiled(tmp_path, digits_full, capsys):
    val = VOCDetection(digits_full / "voc", "val")
    art = _compile("yolo3_mobilenet0.25_digits", tmp_path)
    ref = evaluate(FloatModel(get_model("yolo3_mobilenet0.25_digits")), val)
    got = evaluate(ArtifactModel(art), val)
    assert ref["voc07_map"] >= 0.7  # 40 scenes: the full 300-scene figure is in training/
    assert abs(got["voc07_map"] - ref["voc07_map"]) <= 0.005
    # the same through the command line, with COCO AP from pycocotools
    code = main(
        ["eval", str(art), "--data", str(digits_full / "coco"), "--metric", "coco", "--limit", "10"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 10 and 0 < report["coco_ap"] <= 1 and report["voc07_map"] > 0


def test_digits_detector_int8_within_one_point(tmp_path, digits_full):
    """int8 (x86, oneDNN) keeps the detector's VOC07 mAP within 1 point of float; the
    calibration scenes are generated apart from the held-out ones (another seed)."""
    from edgecv.compile import CompileOptions, compile_model, local_kernel_libraries
    from edgecv.datasets.digits import generate

    if "dnnl" not in local_kernel_libraries():
        pytest.skip("runtime built without oneDNN")
    calib = generate(tmp_path / "calib", seed=7, train_per_scan=0, scenes=(24, 0))
    art = compile_model(
        CompileOptions(
            model="yolo3_mobilenet0.25_digits",
            precision="int8",
            calib_data=str(calib / "voc"),
            eval_data=str(digits_full / "voc"),
            out_dir=str(tmp_path / "int8"),
        )
    )
    report = json.loads((art / "manifest.json").read_text())["report"]["int8"]
    gate = report["accuracy"]
    assert gate["metric"] == "voc07_map" and gate["images"] == DETECTION_IMAGES
    assert report["calibration_images"] == 24 and report["layers_int8"] >= LAYERS_INT8_MIN
    assert gate["passed"] and gate["drop"] <= 1.0
    # scored with 8-bit weights (where this CPU has VNNI) and 7-bit ones (CPUs without), the
    # worse kept; re-measured here, independently of the compile's own report
    val = VOCDetection(digits_full / "voc", "val")
    got = remeasure_int8_gate(gate, lambda: evaluate(ArtifactModel(art), val)["voc07_map"] * 100)
    assert all(gate["float"] - v <= 1.0 for v in got.values())
