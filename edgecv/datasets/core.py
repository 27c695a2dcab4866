"""The dataset base class and the classification and detection layouts (``edgecv.datasets``
re-exports them). The segmentation and keypoint layouts build on these; nothing here
imports them.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import InvalidInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


def decode_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as uint8 HxWx3 BGR; clear errors for missing or broken files."""
    from ..images import read_image

    return read_image(path, color=True)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InvalidInputError(f"{what} not found: {path}")
    return path


class Dataset(Sequence):
    """Base: ``classes`` (names) and ``task``; subclasses give ``__len__``/``__getitem__``."""

    task = ""
    classes: tuple[str, ...] = ()

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:  # type: ignore[override]
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def labels(self) -> list[Any]:
        """All labels without decoding images (for metrics and class balance)."""
        raise NotImplementedError


class ImageFolder(Dataset):
    """``root/<class name>/<image>``: one folder per class, classes in sorted order."""

    task = "classification"

    def __init__(self, root: str | os.PathLike[str], classes: Sequence[str] | None = None):
        self.root = _require_dir(Path(root), "image folder")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        if not found:
            raise InvalidInputError(
                f"{self.root} has no class folders (expected root/<class>/<image>)"
            )
        self.classes = tuple(classes) if classes is not None else tuple(found)
        missing = [c for c in self.classes if c not in found]
        if missing:
            raise InvalidInputError(f"{self.root} lacks class folders: {', '.join(missing)}")
        self.samples: list[tuple[Path, int]] = []
        for index, name in enumerate(self.classes):
            files = sorted(
                f for f in (self.root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise InvalidInputError(f"class folder {self.root / name} has no images")
            self.samples.extend((f, index) for f in files)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:  # type: ignore[override]
        path, label = self.samples[index]
        return decode_image(path), label

    def labels(self) -> list[int]:
        return [label for _, label in self.samples]


class RecordIO(Dataset):
    """MXNet RecordIO: ``prefix.rec`` + ``prefix.idx`` (as written by im2rec or
    :func:`write_recordio`); the label is the record header's (first) label."""

    task = "classification"

    def __init__(self, rec: str | os.PathLike[str], classes: Sequence[str] | None = None):
        import mxnet as mx

        rec_path = Path(rec)
        idx_path = rec_path.with_suffix(".idx")
        for p in (rec_path, idx_path):
            if not p.is_file():
                raise InvalidInputError(f"RecordIO file not found: {p}")
        self._record = mx.recordio.MXIndexedRecordIO(str(idx_path), str(rec_path), "r")
        self._keys = sorted(self._record.keys)
        if not self._keys:
            raise InvalidInputError(f"{idx_path} lists no records")
        self._labels = [self._header(k) for k in self._keys]
        n = int(max(self._labels)) + 1
        self.classes = tuple(classes) if classes is not None else tuple(str(i) for i in range(n))

    def _header(self, key: int) -> int:
        import mxnet as mx

        header, _ = mx.recordio.unpack(self._record.read_idx(key))
        label = np.asarray(header.label).ravel()
        return int(label[0])

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:  # type: ignore[override]
        import cv2
        import mxnet as mx

        header, payload = mx.recordio.unpack(self._record.read_idx(self._keys[index]))
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise InvalidInputError(f"record {self._keys[index]} does not hold a decodable image")
        return image, self._labels[index]

    def labels(self) -> list[int]:
        return list(self._labels)


def write_recordio(
    dataset: Dataset, rec: str | os.PathLike[str], encoding: str = ".png", quality: int = 95
) -> Path:
    """Pack a classification dataset into ``rec`` (+ ``.idx``); images encoded as
    ``encoding`` (lossless PNG by default; ``.jpg`` at ``quality`` as im2rec does)."""
    import cv2
    import mxnet as mx

    rec_path = Path(rec)
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    writer = mx.recordio.MXIndexedRecordIO(str(rec_path.with_suffix(".idx")), str(rec_path), "w")
    try:
        for i in range(len(dataset)):
            image, label = dataset[i]
            ok, buf = cv2.imencode(encoding, image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise InvalidInputError(f"cannot encode sample {i}")
            header = mx.recordio.IRHeader(0, float(label), i, 0)
            writer.write_idx(i, mx.recordio.pack(header, buf.tobytes()))
    finally:
        writer.close()
    return rec_path


def _read_label_file(path: Path) -> tuple[str, ...]:
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


class _Detection(Dataset):
    """A detection dataset: subclasses set ``_labels`` (one array per image) and
    ``image_path``."""

    task = "detection"
    _labels: list[np.ndarray]

    def image_path(self, index: int) -> Path:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        return decode_image(self.image_path(index)), self._labels[index].copy()

    def labels(self) -> list[np.ndarray]:
        return [lab.copy() for lab in self._labels]


def coco_annotation(ann_id: int, image_id: int, row: Any) -> dict[str, Any]:
    """A COCO annotation from a corner-box row ``x0, y0, x1, y1, class[, crowd]`` (class
    0-based; COCO category ids start at 1)."""
    x0, y0, x1, y1 = row[:4]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": int(row[4]) + 1,
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "area": (x1 - x0) * (y1 - y0),
        "iscrowd": int(len(row) > 5 and row[5] > 0),
    }


def voc_split(root: Path, task: str, folders: Sequence[str], split: str) -> tuple[Path, list[str]]:
    """A VOC root's image ids for ``split`` of ``ImageSets/<task>``, after checking that the
    root, ``JPEGImages`` and ``folders`` exist; errors name what is missing."""
    root = _require_dir(root, "VOC root")
    for sub in ("JPEGImages", *folders, f"ImageSets/{task}"):
        _require_dir(root / sub, f"VOC folder {sub}")
    split_file = root / "ImageSets" / task / f"{split}.txt"
    if not split_file.is_file():
        raise InvalidInputError(f"VOC split file not found: {split_file}")
    ids = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise InvalidInputError(f"VOC split {split_file} lists no images")
    return root, ids


def voc_classes(
    root: Path, classes: Sequence[str] | None, default: str, first: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Class names: ``classes``, else ``first`` + the lines of ``root/labels.txt``, else
    label set ``default``."""
    if classes is not None:
        return tuple(classes)
    if (root / "labels.txt").is_file():
        return (*first, *_read_label_file(root / "labels.txt"))
    from ..zoo import label_set  # the zoo's label sets only when the dataset names none

    return label_set(default)


class VOCDetection(_Detection):
    """Pascal VOC: ``root/Annotations/<id>.xml``, ``root/JPEGImages/<id>.jpg`` and
    ``root/ImageSets/Main/<split>.txt``. Classes: ``classes``, else ``root/labels.txt``,
    else the 20 VOC classes. Boxes become 0-based (VOC's are 1-based)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        classes: Sequence[str] | None = None,
    ):
        self.root, self.ids = voc_split(Path(root), "Main", ("Annotations",), split)
        self.classes = voc_classes(self.root, classes, "voc")
        index = {name: i for i, name in enumerate(self.classes)}
        self._labels = [self._parse(i, index) for i in self.ids]

    def _parse(self, image_id: str, index: dict[str, int]) -> np.ndarray:
        path = self.root / "Annotations" / f"{image_id}.xml"
        if not path.is_file():
            raise InvalidInputError(f"VOC annotation not found: {path}")
        try:
            tree = ET.parse(path).getroot()
        except ET.ParseError as err:
            raise InvalidInputError(f"cannot parse {path}: {err}") from None
        rows = []
        for obj in tree.iter("object"):
            name = (obj.findtext("name") or "").strip()
            if name not in index:
                raise InvalidInputError(
                    f"{path}: class {name!r} is not one of {list(self.classes)}"
                )
            box = obj.find("bndbox")
            try:
                xmin, ymin, xmax, ymax = (
                    float(box.findtext(k)) - 1.0  # type: ignore[union-attr,arg-type]
                    for k in ("xmin", "ymin", "xmax", "ymax")
                )
            except (AttributeError, TypeError, ValueError):
                raise InvalidInputError(f"{path}: object {name!r} has no valid bndbox") from None
            if xmax <= xmin or ymax <= ymin:
                raise InvalidInputError(f"{path}: object {name!r} has an empty box")
            difficult = float((obj.findtext("difficult") or "0").strip() or 0)
            rows.append([xmin, ymin, xmax, ymax, index[name], difficult])
        return np.array(rows, np.float32).reshape(-1, 6)

    def image_path(self, index: int) -> Path:
        return voc_image(self.root, self.ids[index])


def voc_image(root: Path, image_id: str) -> Path:
    """``root/JPEGImages/<image_id>`` as .jpg, .png or .jpeg (.jpg if none exists)."""
    base = root / "JPEGImages" / image_id
    for suffix in (".jpg", ".png", ".jpeg"):
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    return base.with_suffix(".jpg")


# COCO annotation files: file name prefix -> (what a missing file is called, its format)
_COCO_FILES = {
    "instances": ("annotation", "instances"),
    "person_keypoints": ("keypoints", "keypoints"),
}


class COCOFile(NamedTuple):
    root: Path
    path: Path  # root/annotations/<prefix>_<split>.json
    doc: Any  # its JSON
    image_dir: Path  # root/<split> or root/images/<split>


def read_coco(root: str | os.PathLike[str], split: str, prefix: str) -> COCOFile:
    """A COCO root's ``annotations/<prefix>_<split>.json`` (prefix ``instances`` or
    ``person_keypoints``), parsed, and its image folder; errors name what is missing."""
    missing, kind = _COCO_FILES[prefix]
    root = _require_dir(Path(root), "COCO root")
    path = root / "annotations" / f"{prefix}_{split}.json"
    if not path.is_file():
        raise InvalidInputError(f"COCO {missing} file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{path} is not a COCO {kind} file: {err}") from None
    image_dir = next((d for d in (root / split, root / "images" / split) if d.is_dir()), None)
    if image_dir is None:
        raise InvalidInputError(f"COCO image folder not found: {root / split}")
    return COCOFile(root, path, doc, image_dir)


class COCODetection(_Detection):
    """COCO: ``root/annotations/instances_<split>.json`` with images under ``root/<split>/``
    (or ``root/images/<split>/``). Categories in id order become classes 0..C-1; crowd
    annotations are marked difficult (ignored by the metrics)."""

    def __init__(self, root: str | os.PathLike[str], split: str = "train"):
        self.root, self.annotation_file, doc, self.image_dir = read_coco(root, split, "instances")
        try:
            categories = sorted(doc["categories"], key=lambda c: c["id"])
            images = doc["images"]
            annotations = doc.get("annotations", [])
        except (KeyError, TypeError) as err:
            raise InvalidInputError(
                f"{self.annotation_file} is not a COCO instances file: {err}"
            ) from None
        self.category_ids = [c["id"] for c in categories]
        self.classes = tuple(c["name"] for c in categories)
        index = {cid: i for i, cid in enumerate(self.category_ids)}
        self.images = sorted(images, key=lambda im: im["id"])
        rows: dict[int, list[list[float]]] = {im["id"]: [] for im in self.images}
        for ann in annotations:
            if ann.get("image_id") not in rows or ann.get("category_id") not in index:
                raise InvalidInputError(
                    f"{self.annotation_file}: annotation {ann.get('id')} names an unknown image or category"
                )
            x, y, w, h = ann["bbox"]
            if w <= 0 or h <= 0:
                continue
            rows[ann["image_id"]].append(
                [x, y, x + w, y + h, index[ann["category_id"]], float(ann.get("iscrowd", 0))]
            )
        self._labels = [np.array(rows[im["id"]], np.float32).reshape(-1, 6) for im in self.images]

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.images[index]["file_name"]
