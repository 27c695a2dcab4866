"""A small real dataset that installs with edgecv: scikit-learn's handwritten digits.

The 1797 scans (8x8, 16 grey levels, UCI "optdigits") are split once, by a seeded
permutation, into scans for training and held-out scans for validation; no validation
image contains a training scan. From them a seeded generator writes, in seconds:

- ``classification/{train,val}/<digit>/*.png``: one digit per image (32x32), drawn at a
  random size, position and color on a varied background (ImageNet class-folder layout);
- ``voc/``: scenes of 1-4 digits (128x128) in Pascal VOC layout (JPEGImages, Annotations,
  ImageSets/Main, SegmentationClass with a ``labels.txt``);
- ``coco/``: the same scenes in COCO layout (``annotations/instances_{train,val}.json``),
  and a keypoint set for pose models (``annotations/person_keypoints_{train,val}.json``):
  five keypoints per digit from its ink (see :func:`ink_keypoints`).

The same seed gives the same files, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .core import coco_annotation
from .segmentation import voc_palette

CLASSES = tuple(str(d) for d in range(10))
CLASSIFICATION_SIZE = 32
SCENE_SIZE = 128
VAL_FRACTION = 0.2
KEYPOINTS = ("top", "bottom", "left", "right", "center")
SKELETON = ((1, 5), (2, 5), (3, 5), (4, 5))  # COCO's 1-based pairs: each extreme to the center


@dataclass(frozen=True)
class Scans:
    images: np.ndarray  # (N, 8, 8) float32 in [0, 1]
    labels: np.ndarray  # (N,) int


def load_scans() -> Scans:
    """The digits as shipped inside scikit-learn (no download)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InvalidInputError(
            "the digits dataset needs scikit-learn (pip install scikit-learn)"
        ) from None
    d = load_digits()
    return Scans((d.images / 16.0).astype(np.float32), d.target.astype(np.int64))


def split_scans(scans: Scans, seed: int = 0) -> tuple[Scans, Scans]:
    """Seeded split into (train, val) scans."""
    order = np.random.RandomState(seed).permutation(len(scans.labels))
    n_val = int(round(len(order) * VAL_FRACTION))
    val, train = order[:n_val], order[n_val:]
    return (
        Scans(scans.images[train], scans.labels[train]),
        Scans(scans.images[val], scans.labels[val]),
    )


def _background(rng: np.random.RandomState, h: int, w: int, kinds: int = 4) -> np.ndarray:
    """Solid, gradient, blotchy or striped backgrounds (the first ``kinds`` of these) with
    noise (float RGB in [0, 1])."""
    import cv2

    kind = rng.randint(kinds)
    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    if kind == 0:
        bg = np.broadcast_to(c0, (h, w, 3)).copy()
    elif kind == 1:
        t = np.linspace(0, 1, w if rng.rand() < 0.5 else h)
        t = t[None, :, None] if len(t) == w else t[:, None, None]
        bg = np.broadcast_to(c0 + (c1 - c0) * t, (h, w, 3)).copy()
    elif kind == 2:
        coarse = (0.5 * c0 + 0.5 * rng.uniform(0, 1, (4, 4, 3))).astype(np.float32)
        bg = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    else:
        period = rng.randint(6, 20)
        phase = (np.arange(w) // period) % 2
        bg = np.where(phase[None, :, None] == 1, c0, c1) * np.ones((h, 1, 1))
    bg = bg + rng.normal(0, rng.uniform(0, 0.06), (h, w, 3))
    return bg.astype(np.float32)


def _paste_digit(
    canvas: np.ndarray, scan: np.ndarray, box: tuple[int, int, int, int], rng: np.random.RandomState
) -> np.ndarray:
    """Draw ``scan`` stretched over ``box`` (x0, y0, x1, y1) in a color that contrasts with
    the background there; returns the ink mask (bool) of the drawn pixels."""
    import cv2

    x0, y0, x1, y1 = box
    alpha = cv2.resize(scan, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    region = canvas[y0:y1, x0:x1]
    luma = np.array([0.299, 0.587, 0.114])
    under = float(region.mean(axis=(0, 1)) @ luma)
    for _ in range(20):
        ink = rng.uniform(0, 1, 3)
        if abs(float(ink @ luma) - under) > 0.45:
            break
    else:
        ink = np.zeros(3) if under > 0.5 else np.ones(3)
    canvas[y0:y1, x0:x1] = region * (1 - alpha[..., None]) + ink * alpha[..., None]
    mask = np.zeros(canvas.shape[:2], bool)
    mask[y0:y1, x0:x1] = alpha > 0.5
    return mask


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    """float RGB [0, 1] → uint8 BGR (OpenCV's order)."""
    return (canvas.clip(0, 1) * 255 + 0.5).astype(np.uint8)[..., ::-1].copy()


def render_digit(
    scan: np.ndarray, rng: np.random.RandomState, size: int = CLASSIFICATION_SIZE
) -> np.ndarray:
    """One digit on a plain or gradient background, at a random size and position (uint8 BGR)."""
    canvas = _background(rng, size, size, kinds=2)
    side = int(rng.randint(int(size * 0.6), size + 1))
    w = max(8, int(round(side * rng.uniform(0.8, 1.0))))
    x0 = rng.randint(0, size - w + 1)
    y0 = rng.randint(0, size - side + 1)
    _paste_digit(canvas, scan, (x0, y0, x0 + w, y0 + side), rng)
    return _to_uint8(canvas)


def _ink_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def ink_keypoints(mask: np.ndarray) -> np.ndarray:
    """The :data:`KEYPOINTS` of one digit's ink mask (H, W) bool as (5, 2) float x, y in
    pixel indices (pixel (x, y) is the point x, y, as the runtime's crops sample): the
    topmost, bottommost, leftmost and rightmost ink pixel, each the mean of the pixels tied
    on that extreme row or column (so a mirrored digit gives mirrored points), and the ink
    centroid."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise InvalidInputError("the mask has no ink")
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    top, bottom = ys == ys.min(), ys == ys.max()
    left, right = xs == xs.min(), xs == xs.max()
    return np.array(
        [
            [xs[top].mean(), ys.min()],
            [xs[bottom].mean(), ys.max()],
            [xs.min(), ys[left].mean()],
            [xs.max(), ys[right].mean()],
            [xs.mean(), ys.mean()],
        ]
    )


def render_scene(
    scans: Scans, rng: np.random.RandomState, size: int = SCENE_SIZE, max_digits: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A scene of 1..max_digits digits that do not overlap.

    Returns (uint8 BGR image, label (N, 6) of tight ink boxes ``x0, y0, x1, y1, class, 0``,
    segmentation map uint8 with 0 background and class + 1 on ink pixels, ink masks
    (N, size, size) bool, one per label row).
    """
    canvas = _background(rng, size, size)
    seg = np.zeros((size, size), np.uint8)
    placed: list[tuple[int, int, int, int]] = []
    rows, masks = [], []
    for _ in range(rng.randint(1, max_digits + 1)):
        for _attempt in range(30):
            side = int(rng.randint(size // 8, int(size * 0.38)))
            w = max(6, int(round(side * rng.uniform(0.75, 1.0))))
            x0, y0 = rng.randint(0, size - w + 1), rng.randint(0, size - side + 1)
            box = (x0, y0, x0 + w, y0 + side)
            if all(
                box[2] <= p[0] or p[2] <= box[0] or box[3] <= p[1] or p[3] <= box[1] for p in placed
            ):
                break
        else:
            continue
        k = rng.randint(len(scans.labels))
        mask = _paste_digit(canvas, scans.images[k], box, rng)
        ink = _ink_box(mask)
        if ink is None:
            continue
        placed.append(box)
        seg[mask] = scans.labels[k] + 1
        rows.append([*ink, float(scans.labels[k]), 0.0])
        masks.append(mask)
    label = np.array(rows, np.float32).reshape(-1, 6)
    return _to_uint8(canvas), label, seg, np.array(masks, bool).reshape(-1, size, size)


def _voc_xml(image_id: str, size: int, label: np.ndarray) -> str:
    objects = "".join(
        f"  <object>\n    <name>{CLASSES[int(r[4])]}</name>\n    <difficult>0</difficult>\n"
        f"    <bndbox><xmin>{int(r[0]) + 1}</xmin><ymin>{int(r[1]) + 1}</ymin>"
        f"<xmax>{int(r[2])}</xmax><ymax>{int(r[3])}</ymax></bndbox>\n  </object>\n"
        for r in label
    )
    return (
        f"<annotation>\n  <filename>{image_id}.jpg</filename>\n"
        f"  <size><width>{size}</width><height>{size}</height><depth>3</depth></size>\n"
        f"{objects}</annotation>\n"
    )


# the keypoint set's one category (COCO keypoints format)
_DIGIT = {
    "id": 1,
    "name": "digit",
    "supercategory": "digit",
    "keypoints": list(KEYPOINTS),
    "skeleton": [list(p) for p in SKELETON],
}


def _keypoint_annotation(
    ann_id: int, image_id: int, row: np.ndarray, mask: np.ndarray
) -> dict[str, object]:
    """A COCO keypoints annotation of one digit: its box (as in ``instances_*.json``), the
    ink area (COCO's ``area`` is the segment's) and :func:`ink_keypoints`, all visible."""
    x0, y0, x1, y1 = (int(v) for v in row[:4])
    points = [[round(float(x), 2), round(float(y), 2), 2] for x, y in ink_keypoints(mask)]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "area": int(mask.sum()),
        "iscrowd": 0,
        "num_keypoints": len(points),
        "keypoints": [v for p in points for v in p],
    }


def generate(
    out: str | os.PathLike[str],
    seed: int = 0,
    train_per_scan: int = 4,
    scenes: tuple[int, int] = (1200, 300),
    overwrite: bool = False,
) -> Path:
    """Write the digits dataset under ``out`` (see the module docstring); returns ``out``.

    ``train_per_scan`` renderings of every training scan (one per validation scan) for
    classification; ``scenes`` = (train, val) scene counts for detection/segmentation.
    Written to a staging folder and moved into place, so a partial dataset never appears.
    """
    import cv2

    root = Path(out)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise InvalidInputError(f"{root} exists and is not empty (use overwrite)")
        shutil.rmtree(root)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    train_scans, val_scans = split_scans(load_scans(), seed)
    try:
        for split, subset, copies in (
            ("train", train_scans, train_per_scan),
            ("val", val_scans, 1),
        ):
            rng = np.random.RandomState([seed, 1, int(split == "val")])
            for d in CLASSES:
                (staging / "classification" / split / d).mkdir(parents=True, exist_ok=True)
            for i, (scan, digit) in enumerate(zip(subset.images, subset.labels, strict=True)):
                for c in range(copies):
                    image = render_digit(scan, rng)
                    cv2.imwrite(
                        str(staging / "classification" / split / str(digit) / f"{i:04d}_{c}.png"),
                        image,
                    )

        voc, coco = staging / "voc", staging / "coco"
        for sub in (
            "JPEGImages",
            "Annotations",
            "ImageSets/Main",
            "ImageSets/Segmentation",
            "SegmentationClass",
        ):
            (voc / sub).mkdir(parents=True, exist_ok=True)
        (coco / "annotations").mkdir(parents=True, exist_ok=True)
        (voc / "labels.txt").write_text("\n".join(CLASSES) + "\n")
        palette = voc_palette()
        jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95]
        for split, subset, count in (
            ("train", train_scans, scenes[0]),
            ("val", val_scans, scenes[1]),
        ):
            rng = np.random.RandomState([seed, 2, int(split == "val")])
            (coco / split).mkdir(parents=True, exist_ok=True)
            ids, images, annotations, poses = [], [], [], []
            for n in range(count):
                image_id = f"{split}_{n:05d}"
                image, label, seg, masks = render_scene(subset, rng)
                cv2.imwrite(str(voc / "JPEGImages" / f"{image_id}.jpg"), image, jpeg)
                cv2.imwrite(str(coco / split / f"{image_id}.jpg"), image, jpeg)
                (voc / "Annotations" / f"{image_id}.xml").write_text(
                    _voc_xml(image_id, SCENE_SIZE, label)
                )
                cv2.imwrite(
                    str(voc / "SegmentationClass" / f"{image_id}.png"), palette[seg][..., ::-1]
                )
                ids.append(image_id)
                images.append(
                    {
                        "id": n + 1,
                        "file_name": f"{image_id}.jpg",
                        "width": SCENE_SIZE,
                        "height": SCENE_SIZE,
                    }
                )
                for r in label:
                    row = [int(v) for v in r[:5]]  # whole pixels, not crowd
                    annotations.append(coco_annotation(len(annotations) + 1, n + 1, row))
                for r, mask in zip(label, masks, strict=True):
                    poses.append(_keypoint_annotation(len(poses) + 1, n + 1, r, mask))
            for task_dir in ("Main", "Segmentation"):
                (voc / "ImageSets" / task_dir / f"{split}.txt").write_text("\n".join(ids) + "\n")
            categories = [
                {"id": i + 1, "name": c, "supercategory": "digit"} for i, c in enumerate(CLASSES)
            ]
            (coco / "annotations" / f"instances_{split}.json").write_text(
                json.dumps({"images": images, "annotations": annotations, "categories": categories})
            )
            (coco / "annotations" / f"person_keypoints_{split}.json").write_text(
                json.dumps({"images": images, "annotations": poses, "categories": [_DIGIT]})
            )
        (staging / "README.txt").write_text(
            f"edgecv digits dataset, seed {seed}: built from scikit-learn's handwritten digits "
            f"(UCI optdigits scans); {len(train_scans.labels)} training and "
            f"{len(val_scans.labels)} held-out scans.\n"
        )
        root.parent.mkdir(parents=True, exist_ok=True)
        if root.exists():
            root.rmdir()
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root
