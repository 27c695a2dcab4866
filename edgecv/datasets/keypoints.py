"""COCO keypoints (``person_keypoints_<split>.json``) for top-down pose models.

A sample is ``(image, label)``: the image as OpenCV decodes it (uint8 HxWx3, BGR) and a
:class:`PoseLabel` with one row per annotated instance. ``classes`` are the keypoint
names (a pose model's "classes" are its joints). As in COCO's own evaluation, crowd
annotations and annotations without a labelled keypoint stay in the label but are marked
``ignore``: pose training skips them and the keypoint AP does not score them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .core import Dataset, decode_image, read_coco

# the OKS sigma of every keypoint of a set that is not COCO's 17 and brings no sigmas of
# its own: between COCO's face points (.025-.035) and its body joints (.062-.107)
UNIFORM_SIGMA = 0.05

# COCO's 17 per-keypoint sigmas (left, right), written as COCOeval writes them so the
# floats are identical
COCO_KEYPOINT_SIGMAS = np.array([
    .26,                    # nose
    .25, .25, .35, .35,     # eyes, ears
    .79, .79, .72, .72,     # shoulders, elbows
    .62, .62, 1.07, 1.07,   # wrists, hips
    .87, .87, .89, .89,     # knees, ankles
]) / 10.0  # fmt: skip


def default_sigmas(names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Per-keypoint OKS sigmas: COCO's for COCO's 17 person keypoints (in COCO's order),
    else :data:`UNIFORM_SIGMA` for each keypoint."""
    from ..zoo import label_set

    if tuple(names) == label_set("coco_keypoints"):
        return COCO_KEYPOINT_SIGMAS.copy()
    return np.full(len(names), UNIFORM_SIGMA)


@dataclass(frozen=True)
class PoseLabel:
    """The instances of one image (N of them, K keypoints each), in image pixels.

    ``boxes`` (N, 4) float32 corners ``x0, y0, x1, y1``; ``keypoints`` (N, K, 3) float32
    ``x, y, v`` with COCO's visibility v (0 unlabelled, 1 labelled but hidden, 2 visible);
    ``areas`` (N,) float32, COCO's ``area`` (the scale of the keypoint similarity);
    ``ignore`` (N,) bool, crowd or no labelled keypoint."""

    boxes: np.ndarray
    keypoints: np.ndarray
    areas: np.ndarray
    ignore: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    def kept(self) -> PoseLabel:
        """The instances that are trained on and scored (``ignore`` False)."""
        keep = ~self.ignore
        return PoseLabel(
            self.boxes[keep], self.keypoints[keep], self.areas[keep], self.ignore[keep]
        )

    def copy(self) -> PoseLabel:
        return PoseLabel(
            self.boxes.copy(), self.keypoints.copy(), self.areas.copy(), self.ignore.copy()
        )


def _keypoint_category(categories: list[dict[str, Any]], where: Path) -> dict[str, Any]:
    with_names = [c for c in categories if c.get("keypoints")]
    if not with_names:
        raise InvalidInputError(f"{where}: no category lists keypoint names ('keypoints')")
    if len(with_names) > 1:
        names = [c.get("name") for c in with_names]
        raise InvalidInputError(
            f"{where}: categories {names} all have keypoints; edgecv reads one keypoint category"
        )
    return with_names[0]


def _skeleton(category: dict[str, Any], k: int, where: Path) -> tuple[tuple[int, int], ...]:
    """COCO's 1-based limb pairs → 0-based."""
    pairs = []
    for pair in category.get("skeleton") or []:
        if len(pair) != 2 or not all(isinstance(j, int) and 1 <= j <= k for j in pair):
            raise InvalidInputError(
                f"{where}: skeleton pair {pair} is not two keypoint numbers within 1..{k}"
            )
        pairs.append((pair[0] - 1, pair[1] - 1))
    return tuple(pairs)


def _sigmas(category: dict[str, Any], names: tuple[str, ...], where: Path) -> np.ndarray:
    """``sigmas`` of the category when the file gives them (not part of COCO's format, but
    how a dataset can bring its own), else :func:`default_sigmas`."""
    given = category.get("sigmas")
    if given is None:
        return default_sigmas(names)
    try:
        sigmas = np.array(given, np.float64)
    except (TypeError, ValueError):
        sigmas = np.zeros(0)
    if sigmas.shape != (len(names),) or not np.all(np.isfinite(sigmas) & (sigmas > 0)):
        raise InvalidInputError(
            f"{where}: 'sigmas' must be {len(names)} positive numbers, one per keypoint"
        )
    return sigmas


class COCOKeypoints(Dataset):
    """COCO keypoints: ``root/annotations/person_keypoints_<split>.json`` with images under
    ``root/<split>/`` (or ``root/images/<split>/``). The file's one category with
    ``keypoints`` gives ``classes`` (the keypoint names), ``skeleton`` (0-based pairs) and,
    when it has them, ``sigmas``; other categories' annotations are not read. Boxes
    without area are dropped (as :class:`COCODetection` does). Every image is a sample,
    also one without people."""

    task = "pose"

    def __init__(self, root: str | os.PathLike[str], split: str = "train"):
        self.root, path, doc, self.image_dir = read_coco(root, split, "person_keypoints")
        self.annotation_file = path
        try:
            categories = list(doc["categories"])
            images = sorted(doc["images"], key=lambda im: im["id"])
            annotations = list(doc.get("annotations", []))
        except (KeyError, TypeError) as err:
            raise InvalidInputError(f"{path} is not a COCO keypoints file: {err!r}") from None
        unnamed = [im["id"] for im in images if "file_name" not in im]
        if unnamed:
            raise InvalidInputError(f"{path}: image {unnamed[0]} has no 'file_name'")
        category = _keypoint_category(categories, path)
        self.category = str(category.get("name", ""))
        self.classes = tuple(str(n) for n in category["keypoints"])
        self.skeleton = _skeleton(category, len(self.classes), path)
        self.sigmas = _sigmas(category, self.classes, path)
        self.images = images
        rows: dict[Any, list[tuple]] = {im["id"]: [] for im in images}
        for ann in annotations:
            if ann.get("category_id") != category.get("id"):
                continue
            if ann.get("image_id") not in rows:
                raise InvalidInputError(
                    f"{path}: annotation {ann.get('id')} names an unknown image {ann.get('image_id')}"
                )
            row = self._parse(ann, path)
            if row is not None:
                rows[ann["image_id"]].append(row)
        self._labels = [self._stack(rows[im["id"]]) for im in images]

    def _parse(self, ann: dict[str, Any], where: Path) -> tuple | None:
        k = len(self.classes)
        what = f"{where}: annotation {ann.get('id')}"
        try:
            kps = np.array(ann["keypoints"], np.float32)
            x, y, w, h = (float(v) for v in ann["bbox"])
            crowd = bool(ann.get("iscrowd", 0))
            area = float(ann.get("area", w * h))
        except KeyError as err:
            raise InvalidInputError(f"{what} has no {err}") from None
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"{what}: 'bbox' must be 4 numbers and 'keypoints' {3 * k} numbers"
            ) from None
        if kps.shape != (3 * k,) or not np.all(np.isfinite(kps)):
            raise InvalidInputError(
                f"{what}: 'keypoints' must be {3 * k} numbers (x, y, v for {k} keypoints), "
                f"got {kps.size}"
            )
        if not all(math.isfinite(v) for v in (x, y, w, h, area)):
            raise InvalidInputError(f"{what}: 'bbox' or 'area' is not finite")
        if w <= 0 or h <= 0:
            return None
        kps = kps.reshape(k, 3)
        # COCOeval ignores crowd regions and people without a labelled keypoint
        ignore = crowd or not (kps[:, 2] > 0).any()
        return (x, y, x + w, y + h), kps, area, ignore

    def _stack(self, rows: list[tuple]) -> PoseLabel:
        k = len(self.classes)
        return PoseLabel(
            np.array([r[0] for r in rows], np.float32).reshape(-1, 4),
            np.array([r[1] for r in rows], np.float32).reshape(-1, k, 3),
            np.array([r[2] for r in rows], np.float32),
            np.array([r[3] for r in rows], bool),
        )

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.images[index]["file_name"]

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, PoseLabel]:  # type: ignore[override]
        return decode_image(self.image_path(index)), self._labels[index].copy()

    def labels(self) -> list[PoseLabel]:
        return [lab.copy() for lab in self._labels]


__all__ = ["COCOKeypoints", "PoseLabel", "UNIFORM_SIGMA", "default_sigmas"]
