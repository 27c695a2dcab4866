"""Semantic segmentation datasets: Pascal VOC (``SegmentationClass`` PNGs) and COCO
(instance masks of ``instances_*.json`` painted into one label map).

Every item is ``(image, label)``: the image as OpenCV decodes it (uint8 HxWx3, BGR) and the
label an HxW uint8 map of class ids, 0 the background, 255 "ignore" (VOC's object borders,
COCO's crowd regions). ``classes`` starts with ``"background"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .core import Dataset, decode_image, read_coco, voc_classes, voc_image, voc_split

IGNORE = 255


def voc_palette() -> np.ndarray:
    """VOC's color palette: 256 RGB rows, class index bits interleaved into the colors."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def _colors_to_index() -> dict[int, int]:
    pal = voc_palette().astype(np.int64)
    keys = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    return {int(k): i for i, k in enumerate(keys)}


_COLOR_INDEX = _colors_to_index()


def read_voc_mask(path: Path, num_classes: int) -> np.ndarray:
    """A ``SegmentationClass`` PNG as class ids. VOC stores palette (indexed) PNGs, which
    OpenCV decodes to colors; the palette maps them back, so indexed and color PNGs
    (as edgecv's digits generator writes) read the same. Single-channel PNGs are ids."""
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InvalidInputError(f"cannot decode segmentation mask {path}")
    if raw.ndim == 2:
        ids = raw.astype(np.int64)
    else:
        rgb = raw[..., 2::-1].astype(np.int64) if raw.shape[2] >= 3 else None
        if rgb is None:
            raise InvalidInputError(f"{path}: a mask must be a 1- or 3-channel PNG")
        keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        uniq, inverse = np.unique(keys, return_inverse=True)
        unknown = [hex(int(k)) for k in uniq if int(k) not in _COLOR_INDEX]
        if unknown:
            raise InvalidInputError(f"{path}: colors outside the VOC palette: {unknown[:3]}")
        ids = np.array([_COLOR_INDEX[int(k)] for k in uniq], np.int64)[inverse].reshape(keys.shape)
    bad = np.unique(ids[(ids >= num_classes) & (ids != IGNORE)])
    if bad.size:
        raise InvalidInputError(
            f"{path}: class ids {bad[:5].tolist()} outside the {num_classes} classes"
        )
    return ids.astype(np.uint8)


class VOCSegmentation(Dataset):
    """Pascal VOC: ``root/JPEGImages/<id>.jpg``, ``root/SegmentationClass/<id>.png`` and
    ``root/ImageSets/Segmentation/<split>.txt``. Classes: "background" and then the names
    in ``root/labels.txt``, or else VOC's 21."""

    task = "segmentation"

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        classes: Sequence[str] | None = None,
    ):
        self.root, self.ids = voc_split(Path(root), "Segmentation", ("SegmentationClass",), split)
        self.classes = voc_classes(self.root, classes, "voc_seg", ("background",))
        for i in self.ids:
            for path in (self.mask_path(i), self.image_path(i)):
                if not path.is_file():
                    raise InvalidInputError(f"the {split} split lists {i}, but {path} is missing")

    def image_path(self, image_id: str) -> Path:
        return voc_image(self.root, image_id)

    def mask_path(self, image_id: str) -> Path:
        return self.root / "SegmentationClass" / f"{image_id}.png"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        image_id = self.ids[index]
        image = decode_image(self.image_path(image_id))
        mask = read_voc_mask(self.mask_path(image_id), len(self.classes))
        if mask.shape != image.shape[:2]:
            raise InvalidInputError(
                f"{self.mask_path(image_id)}: mask {mask.shape} and image {image.shape[:2]} differ in size"
            )
        return image, mask


class COCOSegmentation(Dataset):
    """COCO: ``root/annotations/instances_<split>.json`` (polygon or RLE ``segmentation``
    per instance), images under ``root/<split>/`` or ``root/images/<split>/``. Instances are
    painted in annotation order as category index + 1 (categories in id order); crowd
    regions become 255 (ignored), as are pixels two instances of different classes claim."""

    task = "segmentation"

    def __init__(self, root: str | os.PathLike[str], split: str = "train"):
        self.root, self.annotation_file, doc, self.image_dir = read_coco(root, split, "instances")
        try:
            categories = sorted(doc["categories"], key=lambda c: c["id"])
            images = sorted(doc["images"], key=lambda im: im["id"])
            annotations = doc.get("annotations", [])
            sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in images}
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInputError(
                f"{self.annotation_file} is not a COCO instances file with image sizes: {err}"
            ) from None
        self.classes = ("background", *(c["name"] for c in categories))
        index = {c["id"]: i + 1 for i, c in enumerate(categories)}
        self.images = images
        self._sizes = sizes
        self._instances: dict[int, list[tuple[int, bool, object]]] = {im["id"]: [] for im in images}
        for ann in annotations:
            if ann.get("image_id") not in self._instances or ann.get("category_id") not in index:
                raise InvalidInputError(
                    f"{self.annotation_file}: annotation {ann.get('id')} names an unknown image or category"
                )
            if "segmentation" not in ann:
                raise InvalidInputError(
                    f"{self.annotation_file}: annotation {ann.get('id')} has no segmentation "
                    "(a detection-only COCO file cannot train segmentation)"
                )
            self._instances[ann["image_id"]].append(
                (index[ann["category_id"]], bool(ann.get("iscrowd", 0)), ann["segmentation"])
            )

    def __len__(self) -> int:
        return len(self.images)

    def mask(self, index: int) -> np.ndarray:
        from pycocotools import mask as mask_utils

        im = self.images[index]
        h, w = self._sizes[im["id"]]
        label = np.zeros((h, w), np.uint8)
        owner = np.zeros((h, w), np.int64)  # class that painted each pixel (0: none)
        crowd = np.zeros((h, w), bool)
        for cls, is_crowd, seg in self._instances[im["id"]]:
            try:
                if isinstance(seg, list):  # polygons
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                elif isinstance(seg.get("counts"), list):  # uncompressed RLE
                    rle = mask_utils.frPyObjects(seg, h, w)
                else:
                    rle = seg
                m = mask_utils.decode(rle).astype(bool)
            except (TypeError, ValueError, AttributeError, KeyError) as err:
                raise InvalidInputError(
                    f"{self.annotation_file}: bad segmentation in image {im['id']}: {err}"
                ) from None
            if m.shape != (h, w):
                raise InvalidInputError(
                    f"{self.annotation_file}: a mask of image {im['id']} is {m.shape}, not {(h, w)}"
                )
            if is_crowd:
                crowd |= m
                continue
            clash = m & (owner > 0) & (owner != cls)
            owner[m & (owner == 0)] = cls
            owner[clash] = -1
        label[owner > 0] = owner[owner > 0]
        label[(owner < 0) | crowd] = IGNORE
        return label

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        image = decode_image(self.image_dir / self.images[index]["file_name"])
        label = self.mask(index)
        if label.shape != image.shape[:2]:
            raise InvalidInputError(
                f"image {self.images[index]['file_name']} is {image.shape[:2]}, its annotation says {label.shape}"
            )
        return image, label


def open_segmentation(path: Path, split: str) -> Dataset:
    """A VOC root (``SegmentationClass``) or a COCO root with instance masks."""
    if (path / "SegmentationClass").is_dir() or (path / "Annotations").is_dir():
        return VOCSegmentation(path, split)
    if (path / "annotations").is_dir():
        return COCOSegmentation(path, split)
    raise InvalidInputError(
        f"{path} is neither a VOC root (SegmentationClass/, ImageSets/Segmentation/) nor a COCO "
        "root (annotations/instances_<split>.json with segmentation)"
    )


__all__ = [
    "COCOSegmentation",
    "VOCSegmentation",
    "open_segmentation",
    "read_voc_mask",
    "voc_palette",
]
