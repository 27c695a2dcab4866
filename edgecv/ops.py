"""The pre- and post-processing ops an artifact carries as data, and what each requires.

The C++ runtime implements every op (``runtime_cpp/src/preprocess.cc``, ``postprocess_plan.cc``);
this module builds the preprocessing list from a model's :class:`~edgecv.registry.DataConfig`
and checks any op list against the fields the C++ parsers read, so that a bundle or a
hand-written metadata file is refused when it is read, with the op and field named, rather
than when the runtime opens the artifact. Imports neither MXNet nor TVM.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidInputError
from .registry import DataConfig

# op -> the fields the C++ parser reads (extra fields are allowed and ignored)
PREPROCESS_FIELDS: dict[str, tuple[str, ...]] = {
    "resize_short": ("size", "interpolation"),
    "center_crop": ("size",),
    "letterbox": ("size", "pad_value"),
    "resize": ("size",),
    "person_crop": ("size", "scale"),
    "normalize": ("mean", "std", "color", "layout"),
}
POSTPROCESS_FIELDS: dict[str, tuple[str, ...]] = {
    "softmax": (),
    "topk": ("k",),
    "yolo3_decode": ("outputs", "strides", "anchors", "num_classes"),
    "ssd_decode": ("class_output", "box_output", "priors", "num_classes", "variances"),
    "centernet_decode": ("outputs", "num_classes", "stride", "topk"),
    "nms": ("iou_threshold", "score_threshold", "topk", "max_detections", "class_agnostic"),
    "segment": ("output", "num_classes"),
    "heatmap_decode": ("output", "num_joints"),
}
# task -> the post-processing ops the runtime accepts for it
TASK_POSTPROCESS: dict[str, tuple[str, ...]] = {
    "classification": ("softmax", "topk"),
    "detection": ("yolo3_decode", "ssd_decode", "centernet_decode", "nms"),
    "segmentation": ("segment",),
    "pose": ("heatmap_decode",),
}
GEOMETRY_OPS = ("center_crop", "letterbox", "resize", "person_crop")


def preprocess_ops(data: DataConfig) -> list[dict[str, Any]]:
    """The ordered preprocessing the C++ runtime applies, as data."""
    size = list(data.input_size)
    if data.resize == "short_crop":
        geometry = [
            {"op": "resize_short", "size": data.resize_short, "interpolation": data.interpolation},
            {"op": "center_crop", "size": size},
        ]
    elif data.resize == "letterbox":
        # pad with the mean color, which normalises to zero
        pad = [int(round(m)) for m in data.mean]
        geometry = [
            {"op": "letterbox", "size": size, "interpolation": data.interpolation, "pad_value": pad}
        ]
    elif data.resize == "stretch":
        geometry = [{"op": "resize", "size": size, "interpolation": data.interpolation}]
    elif data.resize == "person_crop":
        # a person box, enlarged by `scale` to the input's aspect ratio (the whole image
        # when no box is given)
        geometry = [
            {"op": "person_crop", "size": size, "interpolation": data.interpolation, "scale": 1.25}
        ]
    else:
        raise InvalidInputError(f"unknown resize rule {data.resize!r}")
    return [
        *geometry,
        {
            "op": "normalize",
            "mean": list(data.mean),
            "std": list(data.std),
            "color": data.color,
            "layout": "NCHW",
        },
    ]


def _check_fields(
    ops: Any, fields: dict[str, tuple[str, ...]], kind: str, where: str
) -> list[dict[str, Any]]:
    if not isinstance(ops, list):
        raise InvalidInputError(f"{where}: {kind} must be a list of ops")
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise InvalidInputError(f"{where}: {kind} op {i} is not an object with an 'op' name")
        name = op["op"]
        if name not in fields:
            raise InvalidInputError(
                f"{where}: unknown {kind} op {name!r} (known: {', '.join(fields)})"
            )
        missing = [f for f in fields[name] if f not in op]
        if missing:
            raise InvalidInputError(f"{where}: {kind} op {name!r} lacks {', '.join(missing)}")
    return ops


def check_preprocess(ops: Any, input_hw: tuple[int, int], where: str) -> list[dict[str, Any]]:
    """``ops`` if the runtime can apply them to an input of ``input_hw``, else a clear error."""
    _check_fields(ops, PREPROCESS_FIELDS, "preprocess", where)
    names = [op["op"] for op in ops]
    if not any(n in GEOMETRY_OPS for n in names):
        raise InvalidInputError(f"{where}: preprocess has no {', '.join(GEOMETRY_OPS)} step")
    if "normalize" not in names:
        raise InvalidInputError(f"{where}: preprocess has no normalize step")
    for op in ops:
        if op["op"] in GEOMETRY_OPS and list(op["size"]) != list(input_hw):
            raise InvalidInputError(
                f"{where}: {op['op']} size {op['size']} is not the model input {list(input_hw)}"
            )
        if op["op"] == "normalize":
            mean, std = op["mean"], op["std"]
            if len(mean) != 3 or len(std) != 3 or not all(float(s) > 0 for s in std):
                raise InvalidInputError(
                    f"{where}: normalize needs 3 mean and 3 positive std values"
                )
            if op["layout"] != "NCHW":
                raise InvalidInputError(f"{where}: only NCHW input layout is supported")
    return ops


def check_postprocess(ops: Any, task: str, outputs: list[str], where: str) -> list[dict[str, Any]]:
    """``ops`` if they are the runtime's ops for ``task`` and name existing ``outputs``."""
    if task not in TASK_POSTPROCESS:
        raise InvalidInputError(
            f"{where}: unknown task {task!r} (known: {', '.join(TASK_POSTPROCESS)})"
        )
    _check_fields(ops, POSTPROCESS_FIELDS, "postprocess", where)
    for op in ops:
        if op["op"] not in TASK_POSTPROCESS[task]:
            raise InvalidInputError(f"{where}: postprocess op {op['op']!r} is not for {task}")
        named = [
            *op.get("outputs", []),
            *[op[k] for k in ("output", "class_output", "box_output") if k in op],
        ]
        unknown = [n for n in named if n not in outputs]
        if unknown:
            raise InvalidInputError(
                f"{where}: {op['op']} names outputs {unknown} the model does not have "
                f"(it has {outputs})"
            )
    if task == "detection" and not any(op["op"].endswith("_decode") for op in ops):
        raise InvalidInputError(
            f"{where}: a detection model needs yolo3_decode, ssd_decode or centernet_decode"
        )
    return ops


__all__ = [
    "POSTPROCESS_FIELDS",
    "PREPROCESS_FIELDS",
    "TASK_POSTPROCESS",
    "check_postprocess",
    "check_preprocess",
    "preprocess_ops",
]
