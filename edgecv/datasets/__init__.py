"""Datasets in the layouts users already have, read from a local path (nothing is downloaded).

Classification: :class:`ImageFolder` (ImageNet-style class folders) and :class:`RecordIO`
(MXNet ``.rec``/``.idx``). Detection: :class:`VOCDetection` (Pascal VOC XML + ImageSets)
and :class:`COCODetection` (COCO ``instances_*.json``).

Every dataset is a sequence of ``(image, label)``: the image as decoded by OpenCV (uint8
HxWx3, BGR) and the label an int (classification) or a float32 array (N, 6) of
``xmin, ymin, xmax, ymax, class, difficult`` in pixels, 0-based (detection). A layout
that is wrong or incomplete is reported by name when the dataset is opened.

The layouts live in ``core.py`` (base class, classification, detection),
``segmentation.py`` and ``keypoints.py``; this package re-exports them and adds
:func:`open_dataset`. The submodules import ``core``, never this package, so the imports
run one way.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInputError
from .core import (
    COCODetection,
    Dataset,
    ImageFolder,
    RecordIO,
    VOCDetection,
    coco_annotation,
    decode_image,
    write_recordio,
)
from .keypoints import COCOKeypoints
from .segmentation import open_segmentation


def open_dataset(
    path: str | os.PathLike[str], split: str = "val", task: str | None = None
) -> Dataset:
    """Recognise a layout at ``path``: a ``.rec`` file, a VOC root, a COCO root, or class
    folders (``path/<split>`` if it exists, else ``path``)."""
    p = Path(path)
    if p.suffix == ".rec":
        return RecordIO(p)
    if not p.exists():
        raise InvalidInputError(f"dataset path not found: {p}")
    layout = (
        "VOC" if (p / "Annotations").is_dir() else "COCO" if (p / "annotations").is_dir() else ""
    )
    if task == "pose":
        return COCOKeypoints(p, split)
    if task == "segmentation":
        return open_segmentation(p, split)
    if layout and task == "classification":
        raise InvalidInputError(
            f"{p} is a {layout} detection dataset; a classification model needs class folders or a .rec file"
        )
    if layout == "VOC":
        return VOCDetection(p, split)
    if layout == "COCO":
        return COCODetection(p, split)
    if task == "detection":
        raise InvalidInputError(
            f"{p} is neither a VOC root (Annotations/, JPEGImages/, ImageSets/Main/) "
            "nor a COCO root (annotations/instances_<split>.json)"
        )
    folder = p / split if (p / split).is_dir() else p
    return ImageFolder(folder)


__all__ = [
    "COCODetection",
    "COCOKeypoints",
    "Dataset",
    "ImageFolder",
    "RecordIO",
    "VOCDetection",
    "coco_annotation",
    "decode_image",
    "open_dataset",
    "write_recordio",
]
