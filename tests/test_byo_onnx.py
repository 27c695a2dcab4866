"""Bring your own ONNX: models edgecv did not export (built here with ``onnx.helper``) compile
through ``edgecv compile model.onnx --meta meta.toml`` and run through ``edgecv run``, matching
ONNX Runtime; a bad metadata file is refused with one line and exit code 3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_IMAGE

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

pytestmark = pytest.mark.parity

CLASSIFIER_META = """
task = "classification"
name = "tiny_classifier"
classes = ["cat", "dog", "bird", "fish"]

[preprocess]
size = [32, 32]
resize = "stretch"
mean = [123.675, 116.28, 103.53]
std = [58.395, 57.12, 57.375]
color = "RGB"

[postprocess]
softmax = true
top_k = 4
"""

DETECTOR_META = """
task = "detection"
name = "tiny_yolo"
classes = ["a", "b"]

[preprocess]
size = [64, 64]
resize = "letterbox"
mean = [0.0, 0.0, 0.0]
std = [255.0, 255.0, 255.0]

[postprocess]
decode = "yolo3"
outputs = ["s8", "s16"]
strides = [8, 16]
anchors = [[10, 13, 16, 30], [30, 61, 62, 45]]
iou_threshold = 0.45
score_threshold = 0.01
"""

CENTERNET_META = """
task = "detection"
name = "tiny_centernet"
classes = ["a", "b", "c"]

[preprocess]
size = [64, 64]
resize = "letterbox"
mean = [0.0, 0.0, 0.0]
std = [255.0, 255.0, 255.0]

[postprocess]
decode = "centernet"
outputs = ["heatmap", "wh", "reg"]
stride = 4
peaks = 20
"""


def edgecv(*args):
    exe = Path(sys.executable).parent / "edgecv"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=900)


def _init(name: str, shape: tuple[int, ...], rng: np.random.RandomState, scale: float):
    return numpy_helper.from_array((rng.randn(*shape) * scale).astype(np.float32), name)


def classifier(path: Path) -> Path:
    """conv → relu → global pool → dense: 4 classes; a dynamic batch, and the weights also
    listed as graph inputs (as older exporters write them)."""
    rng = np.random.RandomState(0)
    inits = [
        _init("w1", (8, 3, 3, 3), rng, 0.5),
        _init("b1", (8,), rng, 0.1),
        _init("w2", (4, 8), rng, 1.0),
        _init("b2", (4,), rng, 0.1),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["p1"]),
        helper.make_node("Flatten", ["p1"], ["f1"]),
        helper.make_node("Gemm", ["f1", "w2", "b2"], ["scores"], transB=1),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [image, *(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.dims) for t in inits)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def detector(path: Path) -> Path:
    """A YOLOv3-style body: two heads at strides 8 and 16, 2 anchors x (5 + 2 classes)."""
    rng = np.random.RandomState(1)
    channels = 2 * (5 + 2)
    inits = [
        _init("w8", (channels, 3, 8, 8), rng, 0.05),
        _init("b8", (channels,), rng, 0.5),
        _init("w16", (channels, channels, 2, 2), rng, 0.2),
        _init("b16", (channels,), rng, 0.5),
    ]
    nodes = [
        helper.make_node("Conv", ["data", "w8", "b8"], ["s8"], strides=[8, 8]),
        helper.make_node("Conv", ["s8", "w16", "b16"], ["s16"], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolo",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 64, 64])],
        [
            helper.make_tensor_value_info("s8", TensorProto.FLOAT, [1, channels, 8, 8]),
            helper.make_tensor_value_info("s16", TensorProto.FLOAT, [1, channels, 4, 4]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def centernet(path: Path) -> Path:
    """A CenterNet-style body: stride-4 features, then a sigmoid heatmap of 3 classes,
    box sizes (2 to 6 cells) and centre offsets."""
    rng = np.random.RandomState(2)
    inits = [_init("wf", (8, 3, 4, 4), rng, 0.2), _init("bf", (8,), rng, 0.1)]
    nodes = [
        helper.make_node("Conv", ["data", "wf", "bf"], ["f"], strides=[4, 4]),
        helper.make_node("Relu", ["f"], ["r"]),
    ]
    for name, channels, bias in (("logits", 3, -1.0), ("wh", 2, 4.0), ("reg", 2, 0.5)):
        inits += [
            _init(f"w_{name}", (channels, 8, 3, 3), rng, 0.2),
            numpy_helper.from_array(np.full(channels, bias, np.float32), f"b_{name}"),
        ]
        nodes.append(
            helper.make_node("Conv", ["r", f"w_{name}", f"b_{name}"], [name], pads=[1, 1, 1, 1])
        )
    nodes.append(helper.make_node("Sigmoid", ["logits"], ["heatmap"]))
    graph = helper.make_graph(
        nodes,
        "tiny_centernet",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 64, 64])],
        [
            helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, [1, 3, 16, 16]),
            helper.make_tensor_value_info("wh", TensorProto.FLOAT, [1, 2, 16, 16]),
            helper.make_tensor_value_info("reg", TensorProto.FLOAT, [1, 2, 16, 16]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _ort(path: Path, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def _compile(tmp_path: Path, model: Path, meta_text: str) -> Path:
    meta = tmp_path / "meta.toml"
    meta.write_text(meta_text)
    out = tmp_path / "artifact"
    res = edgecv("compile", model, "--meta", meta, "--target", "x86_64", "--out", out)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip().splitlines()[-1]) == out
    return out


def test_classifier_compiles_and_runs_like_onnxruntime(tmp_path):
    from edgecv.runtime import Predictor, read_image

    model = classifier(tmp_path / "clf.onnx")
    art = _compile(tmp_path, model, CLASSIFIER_META)
    res = edgecv("run", art, SAMPLE_IMAGE, "--json")
    assert res.returncode == 0, res.stderr
    top = json.loads(res.stdout)[0]["top"]
    assert [t["label"] for t in top] and len(top) == 4

    predictor = Predictor(art)
    x = predictor.preprocess(read_image(str(SAMPLE_IMAGE)))[1]
    logits = _ort(model, x)[0][0]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    assert [t["index"] for t in top] == list(np.argsort(-probs))
    np.testing.assert_allclose([t["score"] for t in top], np.sort(probs)[::-1], atol=1e-4)
    assert top[0]["label"] == ["cat", "dog", "bird", "fish"][int(np.argmax(probs))]


def test_detector_body_compiles_and_runs_like_onnxruntime(tmp_path):
    from edgecv.runtime import Predictor, read_image

    model = detector(tmp_path / "det.onnx")
    art = _compile(tmp_path, model, DETECTOR_META)
    res = edgecv("run", art, SAMPLE_IMAGE, "--json", "--threshold", "0.05")
    assert res.returncode == 0, res.stderr
    detections = json.loads(res.stdout)[0]["detections"]
    assert detections and {d["label"] for d in detections} <= {"a", "b"}

    predictor = Predictor(art)
    image = read_image(str(SAMPLE_IMAGE))
    x = predictor.preprocess(image)[1]
    got = predictor.run(image, score_threshold=0.05)
    for g, e in zip(got.outputs, _ort(model, x), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * float(np.abs(e).max()))
    assert len(got.scores) == len(detections)


def test_centernet_body_compiles_and_runs_like_onnxruntime(tmp_path):
    """decode = "centernet": the C++ decode of the compiled maps, no NMS by default."""
    from test_centernet import reference_decode
    from test_detection import reference_nms

    from edgecv.artifact import read_manifest
    from edgecv.runtime import Predictor, read_image

    model = centernet(tmp_path / "cn.onnx")
    art = _compile(tmp_path, model, CENTERNET_META)
    nms = next(op for op in read_manifest(art)["postprocess"] if op["op"] == "nms")
    assert (nms["iou_threshold"], nms["topk"], nms["max_detections"]) == (1.0, 20, 20)
    res = edgecv("run", art, SAMPLE_IMAGE, "--json", "--threshold", "0.05")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["detections"]

    predictor = Predictor(art)
    x = predictor.preprocess(read_image(str(SAMPLE_IMAGE)))[1]
    got = predictor.run_tensor(x)
    for g, e in zip(got.outputs, _ort(model, x), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * float(np.abs(e).max()))
    ids, scores, boxes = reference_decode(*got.outputs, k=20, threshold=0.01)
    assert len(ids) == 20
    np.testing.assert_array_equal(got.ids, ids)
    np.testing.assert_array_equal(got.scores, scores)
    np.testing.assert_allclose(got.boxes, boxes, atol=1e-4)
    # run-time overrides: a lower IoU turns on class-aware NMS over the peaks, fewer kept
    nms = predictor.run_tensor(x, iou_threshold=0.2, max_detections=8)
    keep = reference_nms(boxes, scores, ids, 0.2, max_det=8)
    assert len(keep) == 8 and len(reference_nms(boxes, scores, ids, 0.2)) < 20  # suppresses
    np.testing.assert_array_equal(nms.ids, ids[keep])
    np.testing.assert_array_equal(nms.scores, scores[keep])
    high = predictor.run_tensor(x, score_threshold=float(scores[4]))
    np.testing.assert_array_equal(high.scores, scores[scores > scores[4]])


BAD_META = {
    "unknown key": ('task = "classification"\nclases = ["a"]\n', "unknown keys clases"),
    "task": ('task = "segmentation"\nclasses = ["a"]\n', "task must be one of"),
    "no mean": (
        'task = "classification"\nclasses = ["a", "b", "c", "d"]\n[preprocess]\nstd = [1, 1, 1]\n',
        "preprocess.mean is required",
    ),
    "not toml": ("task = \n", "not valid TOML"),
    "wrong size": (
        CLASSIFIER_META.replace("size = [32, 32]", "size = [48, 48]"),
        "differs from the model's input",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_bad_meta_is_refused_with_exit_code_3(tmp_path, case):
    text, message = BAD_META[case]
    meta = tmp_path / "meta.toml"
    meta.write_text(text)
    res = edgecv("compile", classifier(tmp_path / "clf.onnx"), "--meta", meta)
    assert res.returncode == 3, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(meta) in lines[0], res.stderr
    assert not (Path("artifacts") / "tiny_classifier-x86_64-fp32").exists()


@pytest.mark.parametrize(
    "old,new,message",
    [
        ('["heatmap", "wh", "reg"]', '["heatmap", "wh"]', "three outputs"),
        ("peaks = 20", "peaks = 3.7", "postprocess.peaks must be a whole number in 1..1048576"),
        ("peaks = 20", "peaks = 0", "postprocess.peaks must be a whole number"),
        ("stride = 4", 'stride = "4"', "postprocess.stride must be a whole number in 1..4096"),
    ],
    ids=["two-outputs", "fractional-peaks", "zero-peaks", "string-stride"],
)
def test_bad_centernet_meta_is_refused(tmp_path, old, new, message):
    meta = tmp_path / "meta.toml"
    assert old in CENTERNET_META
    meta.write_text(CENTERNET_META.replace(old, new))
    res = edgecv("compile", centernet(tmp_path / "cn.onnx"), "--meta", meta)
    assert res.returncode == 3 and message in res.stderr, res.stderr


def test_yolo_outputs_that_the_model_lacks_are_refused(tmp_path):
    meta = tmp_path / "meta.toml"
    meta.write_text(DETECTOR_META.replace('outputs = ["s8", "s16"]', 'outputs = ["s8", "s32"]'))
    res = edgecv("compile", detector(tmp_path / "det.onnx"), "--meta", meta)
    assert res.returncode == 3 and "s32" in res.stderr, res.stderr


def test_onnx_without_metadata_asks_for_meta(tmp_path):
    res = edgecv("compile", classifier(tmp_path / "clf.onnx"))
    assert res.returncode == 3 and "--meta" in res.stderr, res.stderr


@pytest.mark.unit
def test_bundle_metadata_round_trip_and_version_check():
    from edgecv.bundle import SCHEMA_VERSION, Bundle, parse
    from edgecv.errors import InvalidInputError

    bundle = Bundle(
        model={"name": "m", "task": "detection", "family": "ssd", "weights": "w"},
        input={"name": "data", "shape": [1, 3, 64, 64], "layout": "NCHW"},
        preprocess=[
            {"op": "resize", "size": [64, 64], "interpolation": "linear"},
            {
                "op": "normalize",
                "mean": [0, 0, 0],
                "std": [1, 1, 1],
                "color": "RGB",
                "layout": "NCHW",
            },
        ],
        postprocess=[
            {
                "op": "ssd_decode",
                "class_output": "c",
                "box_output": "b",
                "priors": "priors.bin",
                "num_classes": 1,
                "variances": [0.1, 0.1, 0.2, 0.2],
            }
        ],
        outputs=["c", "b"],
        classes=["x"],
        files={"priors.bin": np.arange(8, dtype=np.float32).reshape(2, 4)},
    )
    back = parse(bundle.to_json(), "here")
    np.testing.assert_array_equal(back.files["priors.bin"], bundle.files["priors.bin"])
    assert back.postprocess == bundle.postprocess and back.input == bundle.input
    doc = json.loads(bundle.to_json())
    with pytest.raises(InvalidInputError, match="schema version 99"):
        parse(json.dumps({**doc, "schema_version": 99}), "here")
    assert SCHEMA_VERSION == 1
    with pytest.raises(InvalidInputError, match="lacks class_output"):
        bad = [{k: v for k, v in bundle.postprocess[0].items() if k != "class_output"}]
        parse(json.dumps({**doc, "postprocess": bad}), "here")
