"""Top-down pose: a person detector, then a pose model on each person box.

Both stages are compiled artifacts run by the C++ runtime; this module only hands the
detector's person boxes to the pose model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .errors import InvalidInputError
from .runtime import DetectionResult, PoseResult, Predictor, read_image


def estimate_poses(
    pose: Predictor, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], order: str = "bgr"
) -> list[PoseResult]:
    """One :class:`PoseResult` per image, from each image's (N, 4) person boxes."""
    if len(images) != len(boxes):
        raise InvalidInputError(
            f"{len(images)} images but {len(boxes)} box lists: one list per image"
        )
    return [pose.run_pose(image, b, order) for image, b in zip(images, boxes, strict=True)]


class PosePipeline:
    """Detector artifact → person boxes (class ``person_class`` above ``score_threshold``,
    at most ``max_people``, best first) → pose artifact."""

    def __init__(
        self,
        detector: str | os.PathLike[str] | Predictor,
        pose: str | os.PathLike[str] | Predictor,
        person_class: str = "person",
        score_threshold: float = 0.5,
        max_people: int = 20,
    ) -> None:
        self.detector = detector if isinstance(detector, Predictor) else Predictor(detector)
        self.pose = pose if isinstance(pose, Predictor) else Predictor(pose)
        if self.detector.task != "detection":
            raise InvalidInputError(f"{self.detector.model} is not a detector")
        if self.pose.task != "pose":
            raise InvalidInputError(f"{self.pose.model} is not a pose model")
        if person_class not in self.detector.classes:
            raise InvalidInputError(
                f"the detector {self.detector.model} has no class {person_class!r}"
            )
        self.person = self.detector.classes.index(person_class)
        self.score_threshold, self.max_people = score_threshold, max_people

    def run(
        self, image: np.ndarray | str | os.PathLike[str], order: str = "bgr"
    ) -> tuple[DetectionResult, PoseResult]:
        """(the person detections used, their poses) for one image."""
        if not isinstance(image, np.ndarray):
            image, order = read_image(image, color=True), "bgr"
        found = self.detector.run(image, order=order).above(self.score_threshold)
        keep = np.flatnonzero(found.ids == self.person)[: self.max_people]
        people = DetectionResult(
            found.ids[keep],
            found.scores[keep],
            found.boxes[keep],
            [found.labels[i] for i in keep],
            found.outputs,
            found.timings,
        )
        return people, self.pose.run_pose(image, people.boxes, order)
