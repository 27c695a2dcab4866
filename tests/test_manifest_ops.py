"""Every zoo model's pre- and post-processing ops, as ``edgecv export`` writes them, through
the C++ parsers a Predictor opens an artifact with (``_runtime.Preprocessor`` and
``_runtime.check_postprocess``: the op table of runtime_cpp/src/postprocess_plan.cc), against
the network's real output shapes; and the op lists the runtime refuses, each with a message
naming the problem."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from edgecv import _runtime
from edgecv.errors import ArtifactError
from edgecv.ops import TASK_POSTPROCESS

from conftest import SAMPLE_IMAGE, zoo_models

pytestmark = pytest.mark.cpp

TASKS = ("classification", "detection", "segmentation", "pose")
MODELS = [m for task in TASKS for m in zoo_models(task)]


@functools.cache
def metadata(model: str) -> dict:
    """What the exported bundle carries for ``model`` (zoo_bundle.export_model's functions:
    preprocess_ops, deploy_head) and the shape of each output, from a forward pass."""
    import mxnet as mx

    from edgecv import zoo
    from edgecv.deploy.zoo_bundle import deploy_head, resolve_data
    from edgecv.ops import preprocess_ops

    spec = zoo.MODELS.get(model)
    data = resolve_data(spec, None)
    shape = (1, 3, *data.input_size)
    net = zoo.get_model(model)
    head = deploy_head(net, shape)
    outs = net(mx.nd.zeros(shape))
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    assert len(outs) == len(head["outputs"]), (model, head["outputs"])
    return {
        "task": spec.task,
        "input_shape": list(shape),
        "preprocess": preprocess_ops(data),
        "postprocess": head["postprocess"],
        "outputs": [(n, list(o.shape)) for n, o in zip(head["outputs"], outs, strict=True)],
        "files": {k: np.asarray(v, np.float32) for k, v in head.get("files", {}).items()},
    }


def check(meta: dict, postprocess: list | None = None, **changes) -> dict:
    m = {**meta, **changes}
    pre = _runtime.Preprocessor(json.dumps(m["preprocess"]), m["input_shape"])
    ops = m["postprocess"] if postprocess is None else postprocess
    return _runtime.check_postprocess(m["task"], json.dumps(ops), pre, m["outputs"], m["files"])


def test_the_op_tables_agree():
    """The ops the Python side accepts per task (edgecv.ops) are the C++ runtime's."""
    assert _runtime.postprocess_ops() == {t: list(ops) for t, ops in TASK_POSTPROCESS.items()}


@pytest.mark.parametrize("model", MODELS)
def test_zoo_ops_parse_in_cpp(model):
    import cv2

    meta = metadata(model)
    pre = _runtime.Preprocessor(json.dumps(meta["preprocess"]), meta["input_shape"])
    image = cv2.imread(str(SAMPLE_IMAGE))
    if meta["task"] == "pose":
        tensor = pre.run_crop(image, [10.0, 10.0, 100.0, 200.0])
    else:
        _, tensor, _ = pre.run(image)
    assert list(tensor.shape) == meta["input_shape"]
    plan = check(meta)
    names = [n for n, _ in meta["outputs"]]
    ops = {op["op"]: op for op in meta["postprocess"]}
    assert plan["task"] == meta["task"]
    if meta["task"] == "classification":
        assert plan["softmax"] == ("softmax" in ops) and plan["top_k"] == ops["topk"]["k"]
    elif meta["task"] == "detection":
        kind = next(op.removesuffix("_decode") for op in ops if op.endswith("_decode"))
        decode = ops[f"{kind}_decode"]
        named = decode.get("outputs") or [decode["class_output"], decode["box_output"]]
        assert [names[i] for i in plan["decoder_outputs"]] == named
        assert plan["decoder"] == kind
        assert plan["nms"]["max_detections"] == ops["nms"]["max_detections"]
    else:
        dense = ops.get("segment") or ops["heatmap_decode"]
        assert names[plan["dense_output"]] == dense["output"]


def _representative(task: str, family: str | None = None) -> dict:
    from edgecv.zoo.catalog import MODELS as CATALOG

    model = next(
        m for m in MODELS if CATALOG.get(m).task == task and family in (None, CATALOG.get(m).family)
    )
    return metadata(model)


def test_unknown_op_and_op_of_another_task_are_refused():
    cls = _representative("classification")
    with pytest.raises(ArtifactError, match="postprocess op 'argmax' is not supported for task"):
        check(cls, [*cls["postprocess"], {"op": "argmax"}])
    det = _representative("detection")
    nms = next(op for op in det["postprocess"] if op["op"] == "nms")
    with pytest.raises(
        ArtifactError, match="postprocess op 'nms' is not supported for task 'classification'"
    ):
        check(cls, [*cls["postprocess"], nms])
    with pytest.raises(ArtifactError, match="task 'tracking' is not supported"):
        check(cls, task="tracking")


def test_a_detector_without_its_decoder_is_refused():
    det = _representative("detection")
    no_decode = [op for op in det["postprocess"] if not op["op"].endswith("_decode")]
    with pytest.raises(ArtifactError, match="detection artifact without a decode op"):
        check(det, no_decode)
    seg = _representative("segmentation")
    with pytest.raises(ArtifactError, match="segmentation artifact without a segment op"):
        check(seg, [])


def test_outputs_that_do_not_fit_the_ops_are_refused():
    yolo = _representative("detection", "yolo3")
    (name, shape), *rest = yolo["outputs"]
    with pytest.raises(ArtifactError, match=f"yolo3_decode: output '{name}' has shape"):
        check(yolo, outputs=[(name, [1, shape[1], shape[2] + 1, shape[3]]), *rest])
    with pytest.raises(ArtifactError, match=f"refers to unknown output '{name}'"):
        check(yolo, outputs=rest)
    ssd = _representative("detection", "ssd")
    with pytest.raises(ArtifactError, match="ssd_decode: priors file is not listed"):
        check(ssd, files={})
    priors = next(iter(ssd["files"]))
    with pytest.raises(ArtifactError, match=f"{priors} does not hold"):
        check(ssd, files={priors: ssd["files"][priors][:-4]})


def test_a_pose_model_needs_its_person_crop():
    pose = _representative("pose")
    h, w = pose["input_shape"][2:]
    normalize = [op for op in pose["preprocess"] if op["op"] == "normalize"]
    with pytest.raises(ArtifactError, match="a pose model needs the person_crop preprocessing"):
        check(pose, preprocess=[{"op": "resize", "size": [h, w]}, *normalize])


@pytest.mark.parametrize("stride", [0, -8])
def test_a_yolo3_stride_that_is_not_positive_is_refused(stride):
    """A hostile or broken manifest: a zero stride would divide by zero in the plan."""
    yolo = _representative("detection", "yolo3")
    ops = json.loads(json.dumps(yolo["postprocess"]))
    decode = next(op for op in ops if op["op"] == "yolo3_decode")
    decode["strides"] = [stride, *decode["strides"][1:]]
    with pytest.raises(ArtifactError, match=f"a stride must be in 1..4096, not {stride}"):
        check(yolo, ops)
