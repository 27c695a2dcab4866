"""Drawing results on images (OpenCV), for Python users and `edgecv run --out`."""

from __future__ import annotations

import numpy as np

from .results import ClassificationResult, DetectionResult, PoseResult, SegmentationResult


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR color per class id."""
    hue = (class_id * 47) % 180
    import cv2

    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(
    image: np.ndarray, result: DetectionResult, threshold: float = 0.5
) -> np.ndarray:
    """A copy of a BGR ``image`` with boxes, labels and scores above ``threshold``."""
    import cv2

    out = image.copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for cid, score, box, label in zip(
        result.ids, result.scores, result.boxes, result.labels, strict=True
    ):
        if score <= threshold:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = class_color(int(cid))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        text = f"{label} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y1 - th - base)
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), color, -1)
        cv2.putText(
            out, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
    return out


def draw_classification(image: np.ndarray, result: ClassificationResult, k: int = 3) -> np.ndarray:
    """A copy of a BGR ``image`` with the top-``k`` classes written in the corner."""
    import cv2

    out = image.copy()
    for i, c in enumerate(result.top[:k]):
        text = f"{c.label} {c.score:.3f}"
        y = 20 + 20 * i
        cv2.putText(out, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(
            out, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out


# COCO's 17-keypoint skeleton (joint index pairs)
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


def draw_segmentation(
    image: np.ndarray, result: SegmentationResult, alpha: float = 0.5
) -> np.ndarray:
    """A copy of a BGR ``image`` with the label map blended in (VOC palette)."""
    color = result.colorize()[..., ::-1].astype(np.float32)  # RGB → BGR
    blended = image.astype(np.float32) * (1 - alpha) + color * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def draw_poses(
    image: np.ndarray, result: PoseResult, threshold: float = 0.2, skeleton=COCO_SKELETON
) -> np.ndarray:
    """A copy of a BGR ``image`` with each person's joints (score above ``threshold``) and
    the skeleton lines between them."""
    import cv2

    out = image.copy()
    for person, (points, scores) in enumerate(zip(result.keypoints, result.scores, strict=True)):
        color = class_color(person)
        shown = scores > threshold
        for a, b in skeleton:
            if a < len(points) and b < len(points) and shown[a] and shown[b]:
                pa = tuple(int(round(v)) for v in points[a])
                pb = tuple(int(round(v)) for v in points[b])
                cv2.line(out, pa, pb, color, 2, cv2.LINE_AA)
        for p, ok in zip(points, shown, strict=True):
            if ok:
                cv2.circle(out, (int(round(p[0])), int(round(p[1]))), 3, (255, 255, 255), -1)
    return out
