"""The exported bundle: an ONNX model plus everything needed to deploy it, in one file.

``edgecv export`` writes it (from the zoo, see :mod:`edgecv.deploy`); ``edgecv compile``
reads it and needs nothing else, so an ONNX model edgecv did not export compiles too, given
the same metadata in a small TOML file (:func:`bundle_from_toml`). The metadata is one JSON
document under the key :data:`METADATA_KEY` of the ONNX file's ``metadata_props``:

    {"schema": "edgecv.bundle", "schema_version": 1,
     "model": {"name", "task", "family", "weights"},
     "input": {"name", "shape": [1, 3, H, W], "layout": "NCHW", "size_multiple", "min_size"},
     "data": DataConfig fields or null, "preprocess": [ops], "postprocess": [ops],
     "outputs": [names], "classes": [names],
     "files": {name: {"dtype": "float32", "shape", "base64"}}   (decode data: SSD priors)
     "producer": {tool: version}, "export_report": {...}}

It is validated when read (:func:`read_bundle`), each error naming the field. Imports
neither MXNet nor TVM; ONNX only inside the functions that read or write models.
"""

from __future__ import annotations

import base64
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .ops import TASK_POSTPROCESS, check_postprocess, check_preprocess, preprocess_ops
from .registry import DataConfig

METADATA_KEY = "edgecv.bundle"
SCHEMA = "edgecv.bundle"
SCHEMA_VERSION = 1
BYO_TASKS = ("classification", "detection")  # what a hand-written meta.toml may declare


@dataclass
class Bundle:
    """The deployment metadata an ONNX model carries (see the module docstring)."""

    model: dict[str, Any]
    input: dict[str, Any]
    preprocess: list[dict[str, Any]]
    postprocess: list[dict[str, Any]]
    outputs: list[str]
    classes: list[str]
    data: dict[str, Any] | None = None
    files: dict[str, np.ndarray] = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)
    export_report: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.model["name"])

    @property
    def task(self) -> str:
        return str(self.model["task"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"])

    def to_json(self) -> str:
        doc = asdict(self)
        doc["files"] = {
            name: {
                "dtype": "float32",
                "shape": list(a.shape),
                "base64": base64.b64encode(np.ascontiguousarray(a, "<f4").tobytes()).decode(),
            }
            for name, a in self.files.items()
        }
        return json.dumps({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **doc})


def parse(text: str, where: str) -> Bundle:
    """A :class:`Bundle` from its JSON text, validated; errors name ``where`` and the field."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{where}: edgecv metadata is not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InvalidInputError(f"{where}: edgecv metadata has no schema {SCHEMA!r}")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise InvalidInputError(
            f"{where}: edgecv metadata schema version {doc.get('schema_version')!r} is not "
            f"supported (this edgecv reads version {SCHEMA_VERSION}; re-export the model)"
        )
    required = ("model", "input", "preprocess", "postprocess", "outputs", "classes")
    missing = [k for k in required if k not in doc]
    if missing:
        raise InvalidInputError(f"{where}: edgecv metadata lacks {', '.join(missing)}")
    files = {}
    for name, entry in (doc.get("files") or {}).items():
        try:
            raw = base64.b64decode(entry["base64"], validate=True)
            files[name] = np.frombuffer(raw, "<f4").reshape(entry["shape"]).copy()
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInputError(f"{where}: data file {name!r} is unreadable ({err})") from None
    bundle = Bundle(
        model=doc["model"],
        input=doc["input"],
        preprocess=doc["preprocess"],
        postprocess=doc["postprocess"],
        outputs=list(doc["outputs"]),
        classes=list(doc["classes"]),
        data=doc.get("data"),
        files=files,
        producer=dict(doc.get("producer") or {}),
        export_report=dict(doc.get("export_report") or {}),
    )
    return validate(bundle, where)


def validate(bundle: Bundle, where: str) -> Bundle:
    """``bundle`` if it is complete and consistent, else an error naming the field."""
    for key in ("name", "task"):
        if not isinstance(bundle.model.get(key), str) or not bundle.model[key]:
            raise InvalidInputError(f"{where}: model.{key} must be a non-empty string")
    if bundle.task not in TASK_POSTPROCESS:
        raise InvalidInputError(
            f"{where}: unknown task {bundle.task!r} (known: {', '.join(TASK_POSTPROCESS)})"
        )
    shape = bundle.input.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or shape[:2] != [1, 3]
        or not all(isinstance(d, int) and d > 0 for d in shape)
    ):
        raise InvalidInputError(f"{where}: input.shape must be [1, 3, H, W], got {shape!r}")
    if not isinstance(bundle.input.get("name"), str):
        raise InvalidInputError(f"{where}: input.name must be the ONNX input's name")
    if not bundle.outputs or not all(isinstance(o, str) for o in bundle.outputs):
        raise InvalidInputError(f"{where}: outputs must list the ONNX outputs' names")
    check_preprocess(bundle.preprocess, (shape[2], shape[3]), where)
    check_postprocess(bundle.postprocess, bundle.task, bundle.outputs, where)
    for op in bundle.postprocess:
        if op["op"] == "ssd_decode" and op["priors"] not in bundle.files:
            raise InvalidInputError(f"{where}: ssd_decode's priors {op['priors']!r} are missing")
        if "num_classes" in op and bundle.classes and op["num_classes"] != len(bundle.classes):
            raise InvalidInputError(
                f"{where}: {op['op']} has {op['num_classes']} classes, "
                f"the class list {len(bundle.classes)}"
            )
    return bundle


def write_metadata(model: Any, bundle: Bundle) -> Any:
    """Store ``bundle`` in the ONNX ``model``'s metadata_props (replacing any); returns it."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, bundle.to_json()
    return model


def load_onnx(path: str | os.PathLike[str]) -> Any:
    """The ONNX model at ``path``; a missing or unreadable file is an InvalidInputError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"ONNX model not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and others
        raise InvalidInputError(f"{path} is not an ONNX model ({err})") from None


def read_bundle(path: str | os.PathLike[str]) -> tuple[Any, Bundle]:
    """The ONNX model at ``path`` and its validated metadata (an error if it has none)."""
    path = Path(path)
    model = load_onnx(path)
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise InvalidInputError(
            f"{path} has no edgecv metadata: export it with `edgecv export`, or describe it "
            "with --meta meta.toml (see the README)"
        )
    bundle = parse(props[METADATA_KEY], str(path))
    check_model_matches(model, bundle, str(path))
    return model, bundle


def check_model_matches(model: Any, bundle: Bundle, where: str) -> None:
    """The metadata's input and output names are the graph's."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in inits]
    if inputs != [bundle.input["name"]]:
        raise InvalidInputError(
            f"{where}: the graph's inputs {inputs} are not the one input "
            f"{bundle.input['name']!r} the metadata describes"
        )
    outputs = [o.name for o in model.graph.output]
    if outputs != bundle.outputs:
        raise InvalidInputError(
            f"{where}: the graph's outputs {outputs} are not the metadata's {bundle.outputs}"
        )


def drop_initializer_inputs(model: Any) -> Any:
    """Remove initializers from the graph inputs (older exporters list them there; ONNX
    Runtime then warns once per weight and treats them as overridable); returns ``model``."""
    inits = {t.name for t in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model


# -- bring your own ONNX: metadata from a TOML file ------------------------------------------

_TOP_KEYS = {"name", "task", "family", "classes", "classes_file", "preprocess", "postprocess"}
_PRE_KEYS = {"size", "resize", "resize_short", "mean", "std", "color", "layout"}
_POST_KEYS = {
    "classification": {"softmax", "top_k"},
    "detection": {
        "decode",
        "outputs",
        "strides",
        "anchors",
        "class_output",
        "box_output",
        "priors",
        "variances",
        "stride",
        "peaks",
        "iou_threshold",
        "score_threshold",
        "topk",
        "max_detections",
        "class_agnostic",
    },
}


def bundle_from_toml(meta_path: str | os.PathLike[str], model: Any, name: str) -> Bundle:
    """The bundle metadata of an ONNX ``model`` edgecv did not export, from a TOML file
    (format in the README, "Bring your own ONNX"); ``name``: the default model name.
    Also fixes the model's input to the declared size (a dynamic batch or size becomes
    1 and H, W) and drops initializers from its inputs."""
    where = str(meta_path)
    try:
        doc = tomllib.loads(Path(meta_path).read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"metadata file not found: {meta_path}") from None
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{where}: not valid TOML ({err})") from None
    _no_unknown(doc, _TOP_KEYS, where, "")
    task = doc.get("task")
    if task not in BYO_TASKS:
        raise InvalidInputError(
            f"{where}: task must be one of {', '.join(BYO_TASKS)}, got {task!r}"
        )
    drop_initializer_inputs(model)
    if len(model.graph.input) != 1:
        names = [i.name for i in model.graph.input]
        raise InvalidInputError(f"{where}: the model must have one image input, it has {names}")
    graph_input = model.graph.input[0]
    pre = doc.get("preprocess", {})
    _no_unknown(pre, _PRE_KEYS, where, "preprocess.")
    size = _input_size(pre, graph_input, where)
    data = _data_config(pre, size, where)
    _fix_input_shape(graph_input, size)
    outputs = [o.name for o in model.graph.output]
    classes = _classes(doc, meta_path, where)
    post = doc.get("postprocess", {})
    _no_unknown(post, _POST_KEYS[task], where, "postprocess.")
    files: dict[str, np.ndarray] = {}
    if task == "classification":
        ops: list[dict[str, Any]] = [{"op": "softmax"}] if post.get("softmax", True) else []
        ops.append({"op": "topk", "k": int(post.get("top_k", min(5, len(classes) or 5)))})
    else:
        ops = _detection_ops(post, outputs, classes, meta_path, files, where)
    bundle = Bundle(
        model={
            "name": str(doc.get("name") or name),
            "task": task,
            "family": str(doc.get("family", "onnx")),
            "weights": "from the ONNX model",
        },
        input={
            "name": graph_input.name,
            "shape": [1, 3, *size],
            "layout": "NCHW",
            "size_multiple": 1,
            "min_size": 1,
        },
        preprocess=preprocess_ops(data),
        postprocess=ops,
        outputs=outputs,
        classes=classes,
        data=asdict(data),
        files=files,
        producer={"onnx_producer": f"{model.producer_name} {model.producer_version}".strip()},
    )
    return validate(bundle, where)


def _no_unknown(table: Any, known: set[str], where: str, prefix: str) -> None:
    if not isinstance(table, dict):
        raise InvalidInputError(f"{where}: [{prefix.rstrip('.')}] must be a table")
    unknown = sorted(set(table) - known)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown keys {', '.join(prefix + k for k in unknown)} "
            f"(known: {', '.join(sorted(prefix + k for k in known))})"
        )


def _input_size(pre: dict[str, Any], graph_input: Any, where: str) -> tuple[int, int]:
    dims = graph_input.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise InvalidInputError(f"{where}: the model input must be NCHW (4-D), it has {len(dims)}")
    if dims[1].HasField("dim_value") and dims[1].dim_value != 3:
        raise InvalidInputError(f"{where}: the model input has {dims[1].dim_value} channels, not 3")
    fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims[2:]]
    if "size" in pre:
        size = pre["size"]
        size = [size, size] if isinstance(size, int) else size
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(s, int) and s > 0 for s in size)
        ):
            raise InvalidInputError(f"{where}: preprocess.size must be H or [H, W], got {size!r}")
        if any(f is not None and f != s for f, s in zip(fixed, size, strict=True)):
            raise InvalidInputError(
                f"{where}: preprocess.size {size} differs from the model's input {fixed}"
            )
        return size[0], size[1]
    if None in fixed:
        raise InvalidInputError(
            f"{where}: the model's input size is dynamic: give preprocess.size = [H, W]"
        )
    return fixed[0], fixed[1]


def _data_config(pre: dict[str, Any], size: tuple[int, int], where: str) -> DataConfig:
    resize = pre.get("resize", "stretch")
    if resize not in ("short_crop", "letterbox", "stretch"):
        raise InvalidInputError(
            f"{where}: preprocess.resize must be short_crop, letterbox or stretch, got {resize!r}"
        )
    for key in ("mean", "std"):
        value = pre.get(key)
        if value is None:
            raise InvalidInputError(
                f"{where}: preprocess.{key} is required (3 values, 0-255 scale)"
            )
        if not (isinstance(value, list) and len(value) == 3):
            raise InvalidInputError(f"{where}: preprocess.{key} needs 3 values, got {value!r}")
    if not all(float(s) > 0 for s in pre["std"]):
        raise InvalidInputError(f"{where}: preprocess.std values must be positive")
    color = pre.get("color", "RGB")
    if color not in ("RGB", "BGR"):
        raise InvalidInputError(f"{where}: preprocess.color must be RGB or BGR, got {color!r}")
    if pre.get("layout", "NCHW") != "NCHW":
        raise InvalidInputError(f"{where}: preprocess.layout: only NCHW is supported")
    short = pre.get("resize_short", int(round(min(size) * 256 / 224)))
    return DataConfig(
        input_size=size,
        resize_short=int(short),
        resize=resize,
        mean=tuple(float(m) for m in pre["mean"]),
        std=tuple(float(s) for s in pre["std"]),
        color=color,
    )


def _classes(doc: dict[str, Any], meta_path: Any, where: str) -> list[str]:
    if "classes" in doc and "classes_file" in doc:
        raise InvalidInputError(f"{where}: give classes or classes_file, not both")
    if "classes_file" in doc:
        path = Path(meta_path).parent / doc["classes_file"]
        if not path.is_file():
            raise InvalidInputError(f"{where}: classes_file {path} not found")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    classes = doc.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise InvalidInputError(f"{where}: classes must be a list of names (or classes_file)")
    return classes


def _detection_ops(
    post: dict[str, Any],
    outputs: list[str],
    classes: list[str],
    meta_path: Any,
    files: dict[str, np.ndarray],
    where: str,
) -> list[dict[str, Any]]:
    decode = post.get("decode")
    nms_defaults: dict[str, Any] = {"iou_threshold": 0.45, "topk": 400, "max_detections": 100}
    if decode == "yolo3":
        names = post.get("outputs", outputs)
        strides, anchors = post.get("strides"), post.get("anchors")
        if not (isinstance(strides, list) and isinstance(anchors, list)):
            raise InvalidInputError(f"{where}: yolo3 needs postprocess.strides and .anchors")
        if not len(names) == len(strides) == len(anchors):
            raise InvalidInputError(
                f"{where}: yolo3 needs one stride and one anchor list per output "
                f"({len(names)} outputs, {len(strides)} strides, {len(anchors)} anchor lists)"
            )
        if any(not a or len(a) % 2 for a in anchors):
            raise InvalidInputError(f"{where}: yolo3 anchors must be (w, h) pairs per output")
        op = {
            "op": "yolo3_decode",
            "outputs": list(names),
            "strides": [int(s) for s in strides],
            "anchors": [[float(v) for v in a] for a in anchors],
            "num_classes": len(classes),
        }
    elif decode == "ssd":
        priors = post.get("priors")
        if not isinstance(priors, str):
            raise InvalidInputError(f"{where}: ssd needs postprocess.priors (an .npy file)")
        path = Path(meta_path).parent / priors
        try:
            array = np.load(path).astype(np.float32)
        except (OSError, ValueError) as err:
            raise InvalidInputError(f"{where}: priors {path}: {err}") from None
        if array.ndim < 1 or array.size % 4:
            raise InvalidInputError(f"{where}: priors must be (N, 4) cx, cy, w, h")
        files["priors.bin"] = array.reshape(-1, 4)
        op = {
            "op": "ssd_decode",
            "class_output": post.get("class_output", outputs[0]),
            "box_output": post.get("box_output", outputs[-1]),
            "priors": "priors.bin",
            "num_classes": len(classes),
            "variances": [float(v) for v in post.get("variances", [0.1, 0.1, 0.2, 0.2])],
        }
    elif decode == "centernet":
        names = post.get("outputs", outputs)
        if not isinstance(names, list) or len(names) != 3:
            raise InvalidInputError(
                f"{where}: centernet needs three outputs: heatmap (after a sigmoid), wh, reg"
            )
        peaks, stride = post.get("peaks", 100), post.get("stride", 4)
        for key, value, high in (("peaks", peaks, 1 << 20), ("stride", stride, 4096)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise InvalidInputError(
                    f"{where}: postprocess.{key} must be a whole number in 1..{high}, got {value!r}"
                )
        op = {
            "op": "centernet_decode",
            "outputs": list(names),
            "num_classes": len(classes),
            "stride": stride,
            "topk": peaks,
        }
        # no NMS unless asked for (IoU 1.0 suppresses nothing): the peaks are the detections
        nms_defaults = {"iou_threshold": 1.0, "topk": peaks, "max_detections": peaks}
    else:
        raise InvalidInputError(
            f"{where}: postprocess.decode must be yolo3, ssd or centernet, got {decode!r}"
        )
    nms = {
        "op": "nms",
        "iou_threshold": float(post.get("iou_threshold", nms_defaults["iou_threshold"])),
        "score_threshold": float(post.get("score_threshold", 0.01)),
        "topk": int(post.get("topk", nms_defaults["topk"])),
        "max_detections": int(post.get("max_detections", nms_defaults["max_detections"])),
        "class_agnostic": bool(post.get("class_agnostic", False)),
    }
    return [op, nms]


def _fix_input_shape(graph_input: Any, size: tuple[int, int]) -> None:
    dims = graph_input.type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 3, *size), strict=True):
        d.ClearField("dim_param")
        d.dim_value = v


__all__ = [
    "METADATA_KEY",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Bundle",
    "bundle_from_toml",
    "drop_initializer_inputs",
    "read_bundle",
    "write_metadata",
]
