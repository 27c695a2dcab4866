"""Drawing results on images (OpenCV), for Python users and `edgecv run --out`."""

from __future__ import annotations

import numpy as np

from .runtime import ClassificationResult, DetectionResult


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
