"""The task table (edgecv/tasks.py) and the int8 accuracy gate on every task: an FCN
segmentation model gated on mIoU and a SimplePose model on keypoint AP (ground-truth boxes),
each compiled with --int8 --calib-data --eval-data on the digits dataset, the gate's numbers
measured again here through the same evaluation code; an impossible --max-drop fails with
the per-layer table."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgecv.errors import EdgecvError, UnknownNameError
from edgecv.ops import TASK_POSTPROCESS
from edgecv.tasks import TASKS, Task

pytestmark = pytest.mark.integration


# -- the table ----------------------------------------------------------------------------


@pytest.mark.unit
def test_every_task_has_every_field():
    assert sorted(TASKS.names()) == sorted(TASK_POSTPROCESS)  # the runtime's tasks, all here
    for task in TASKS:
        for f in dataclasses.fields(Task):
            value = getattr(task, f.name)
            assert value not in (None, ""), f"{task.name}: {f.name} is empty"
        assert TASKS.get(task.name) is task
        assert callable(task.result.from_raw), task.name
        for fn in (task.evaluate, task.describe, task.draw):
            assert callable(fn), task.name
        assert task.headline({task.metric: 0.25}) == 25.0
        with pytest.raises(EdgecvError, match=task.metric):
            task.headline({"images": 3})
    with pytest.raises(UnknownNameError, match="did you mean segmentation"):
        TASKS.get("segmentaton")


class _Data(list):
    def __init__(self, task, classes, items):
        super().__init__(items)
        self.task, self.classes = task, classes


class _Fixed:
    """A model that answers each image with the prediction stored in its first pixel row."""

    def __init__(self, task, classes, answers):
        self.task, self.classes, self.answers = task, classes, answers

    def classify(self, image):
        return self.answers[int(image[0, 0, 0])]

    def detect(self, image):
        return self.answers[int(image[0, 0, 0])]

    def segment(self, image):
        return self.answers[int(image[0, 0, 0])]


@pytest.mark.unit
def test_each_evaluation_reports_its_headline_metric():
    """evaluate() dispatches through the table, and each report carries the key its task's
    headline reads (pose: tests/test_pose_data.py and the gate test below)."""
    from edgecv.evaluate import evaluate

    img = [np.full((4, 4, 3), i, np.uint8) for i in range(2)]
    cls = _Data("classification", ["a", "b"], [(img[0], 0), (img[1], 1)])
    probs = [np.array([0.9, 0.1]), np.array([0.8, 0.2])]
    seg_labels = [np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)]
    seg = _Data("segmentation", ["bg", "x"], list(zip(img, seg_labels, strict=True)))
    box = np.array([[0, 0, 2, 2, 0, 0]], np.float32)
    det = _Data("detection", ["a"], [(img[0], box), (img[1], box)])
    found = (np.array([0]), np.array([0.9]), box[:, :4])
    nothing = (np.zeros(0, int), np.zeros(0), np.zeros((0, 4)))
    for data, answers, points in (
        (cls, probs, 50.0),
        (seg, [seg_labels[0], seg_labels[0]], 25.0),  # IoU: bg 1/2, x 0
        (det, [found, nothing], 600 / 11),  # recall 0.5 at precision 1: 6 of 11 points
    ):
        report = evaluate(_Fixed(data.task, data.classes, answers), data)
        assert TASKS.get(data.task).headline(report) == pytest.approx(points), data.task


# -- the int8 gate on segmentation and pose ------------------------------------------------

SEG_MODEL, SEG_SIZE = "fcn_resnet50_voc", 64
POSE_MODEL, POSE_SIZE = "simple_pose_resnet18_v1b", 128


def _weights(net, last, x, directory, model, classes):
    """Random weights with BatchNorm statistics of a random batch and well-spread outputs,
    saved with their class names beside them (as edgecv's training saves them)."""
    from edgecv.zoo import classes_file

    from conftest import calibrate_batchnorm, scale_last_layer

    calibrate_batchnorm(net, x)
    scale_last_layer(net, last, x)
    path = directory / f"{model}.params"
    net.save_parameters(str(path))
    classes_file(path).write_text("\n".join(classes) + "\n")
    return path


def _seg_weights(directory, classes):
    import mxnet as mx

    import edgecv

    net = edgecv.get_model(SEG_MODEL, classes=list(classes))
    net.set_input_size((SEG_SIZE, SEG_SIZE))
    x = mx.nd.array(np.random.RandomState(0).uniform(-2, 2, (2, 3, SEG_SIZE, SEG_SIZE)))
    net.training_outputs = True  # the auxiliary head too: every parameter initialised
    net(x)
    net.training_outputs = False
    return _weights(net, net.head.block[-1], x, directory, SEG_MODEL, classes)


def _pose_weights(directory, joints):
    import mxnet as mx

    import edgecv

    net = edgecv.get_model(POSE_MODEL, classes=list(joints))
    x = mx.nd.array(np.random.RandomState(0).uniform(-2, 2, (2, 3, POSE_SIZE, POSE_SIZE * 3 // 4)))
    net(x)
    return _weights(net, net.final_layer, x, directory, POSE_MODEL, joints)


def _check_gate(out, data, metric, float_model):
    """The gate's float and int8 numbers are the task's headline metric, as measured here
    again: the float model (MXNet behind the artifact's C++ pre/post-processing) and the
    int8 artifact with each weight width the gate scored."""
    from edgecv import _runtime
    from edgecv.evaluate import ArtifactModel, evaluate

    gate = json.loads((out / "manifest.json").read_text())["report"]["int8"]["accuracy"]
    assert gate["metric"] == metric and gate["passed"] and gate["images"] == len(data)
    assert gate["float"] == pytest.approx(100 * evaluate(float_model, data)[metric], abs=1.0)
    by_bits = gate["attempts"][-1]["by_weight_bits"]
    assert gate["int8"] == min(by_bits.values())
    assert gate["drop"] == pytest.approx(gate["float"] - gate["int8"], abs=2e-3)
    for bits in gate["weight_bits"]:
        _runtime.set_int8_weight_bits(bits)
        try:
            got = 100 * evaluate(ArtifactModel(out), data)[metric]
        finally:
            _runtime.set_int8_weight_bits(0)
        assert got == pytest.approx(by_bits[str(bits)], abs=1e-3)
    return gate


@pytest.mark.usefixtures("seeded_mxnet")
def test_int8_segmentation_gated_on_miou(digits_root, tmp_path, capsys):
    import edgecv
    from edgecv.cli import main
    from edgecv.datasets import open_dataset
    from edgecv.evaluate import FloatModel

    data = open_dataset(digits_root / "voc", "val", "segmentation")
    weights = _seg_weights(tmp_path, data.classes)
    out = tmp_path / "seg-int8"
    args = [
        "compile", SEG_MODEL, "--int8", "--input-size", str(SEG_SIZE),
        "--pretrained", str(weights), "--out", str(out),
        "--calib-data", str(digits_root / "voc"), "--calib-images", "8",
        "--eval-data", str(digits_root / "voc"), "--max-drop", "100",
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    float_model = FloatModel(edgecv.get_model(SEG_MODEL, pretrained=weights), SEG_SIZE)
    gate = _check_gate(out, data, "mean_iou", float_model)
    assert main(["info", str(out)]) == 0
    assert f"mean_iou float {gate['float']} → int8 {gate['int8']}" in capsys.readouterr().out


@pytest.mark.usefixtures("seeded_mxnet")
def test_int8_pose_gated_on_keypoint_ap(digits_root, tmp_path):
    import edgecv
    from edgecv.compile import CompileOptions, compile_model
    from edgecv.datasets import open_dataset
    from edgecv.evaluate import FloatModel

    data = open_dataset(digits_root / "coco", "val", "pose")
    weights = _pose_weights(tmp_path, data.classes)
    options = CompileOptions(
        model=POSE_MODEL,
        precision="int8",
        input_size=POSE_SIZE,
        pretrained=str(weights),
        calib_data=str(digits_root / "coco"),
        calib_images=8,
        eval_data=str(digits_root / "coco"),
    )
    out = compile_model(
        dataclasses.replace(options, out_dir=str(tmp_path / "pose-int8"), max_drop=100.0)
    )
    float_model = FloatModel(edgecv.get_model(POSE_MODEL, pretrained=weights), POSE_SIZE)
    _check_gate(out, data, "keypoint_ap", float_model)
    # (a gate that no fallback satisfies: test_int8.py's classifier case; here it rebuilt the
    # pose model ~7 times, 3 of CI's minutes)
