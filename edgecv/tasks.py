"""The tasks edgecv deploys, one :class:`Task` entry each in :data:`TASKS`.

An entry says what the runtime returns for the task (its result type in
:mod:`edgecv.results`), how its accuracy is evaluated and which number of the evaluation
report headlines it (the number the int8 gate holds to ``--max-drop``), and how
``edgecv run`` prints and draws a result. The runtime, ``edgecv eval``, ``edgecv run`` and
the int8 gate look a task up here instead of branching on its name; a new task brings its
result type, its evaluation loop and formatting (this module), and its C++ post-processing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .datasets.keypoints import default_sigmas
from .errors import EdgecvError, InvalidInputError
from .metrics import VOC07MAP, SegmentationMetric, coco_ap, keypoint_ap, topk_accuracy
from .registry import Registry
from .results import ClassificationResult, DetectionResult, PoseResult, SegmentationResult

Progress = Callable[[int, int], None] | None
# (model, dataset, first n images, progress, extra metric names) -> the task's report fields
Evaluation = Callable[[Any, Any, int, Progress, Sequence[str]], dict[str, Any]]


@dataclass(frozen=True)
class Task:
    """One task: see the module docstring."""

    name: str
    result: type  # what Predictor.run returns; built by its ``from_raw(raw, classes)``
    metric: str  # the headline: a key of the evaluation report, a fraction in [0, 1]
    metric_label: str  # the headline as people say it (messages, the README)
    evaluate: Evaluation  # the evaluation loop (edgecv.evaluate.evaluate dispatches here)
    describe: Callable[[Any, float], tuple[dict[str, Any], list[str]]]  # run: JSON, lines
    draw: Callable[[np.ndarray, Any, float], np.ndarray]  # run --out: the result drawn

    def headline(self, report: dict[str, Any]) -> float:
        """The headline metric of an evaluation ``report`` of this task, in points (0-100)."""
        if self.metric not in report:
            raise EdgecvError(
                f"no {self.metric} ({self.metric_label}) in the {self.name} evaluation report "
                f"{sorted(report)}"
            )
        return 100.0 * float(report[self.metric])


TASKS: Registry[Task] = Registry("task", "edgecv list --help")

# ---------------------------------------------------------------------------- classification


def evaluate_classification(
    model: Any, dataset: Any, n: int, progress: Progress, metrics: Sequence[str] = ()
) -> dict[str, Any]:
    """top1 and top5 of the model's class probabilities."""
    probs, labels = [], []
    for i in range(n):
        image, label = dataset[i]
        probs.append(model.classify(image))
        labels.append(label)
        if progress:
            progress(i + 1, n)
    return topk_accuracy(np.stack(probs), labels)


def _describe_classification(
    res: ClassificationResult, threshold: float
) -> tuple[dict[str, Any], list[str]]:
    entry = {"top": [{"index": c.index, "score": c.score, "label": c.label} for c in res.top]}
    lines = [f"  {c.score:8.4f}  {c.index:5d}  {c.label}" for c in res.top]
    return entry, lines or [f"  (nothing above {threshold})"]


def _draw_classification(
    image: np.ndarray, res: ClassificationResult, threshold: float
) -> np.ndarray:
    from .viz import draw_classification

    return draw_classification(image, res)


TASKS.add(
    "classification",
    Task(
        "classification",
        ClassificationResult,
        "top1",
        "top-1 accuracy",
        evaluate_classification,
        _describe_classification,
        _draw_classification,
    ),
)

# ---------------------------------------------------------------------------- detection


def evaluate_detection(
    model: Any, dataset: Any, n: int, progress: Progress, metrics: Sequence[str] = ()
) -> dict[str, Any]:
    """voc07_map and its per-class APs; with ``"coco"`` in ``metrics`` also COCO AP."""
    voc = VOC07MAP(len(dataset.classes))
    gts, dets, sizes = [], [], []
    for i in range(n):
        image, gt = dataset[i]
        d = model.detect(image)
        voc.update(*d, gt)
        gts.append(gt)
        dets.append(d)
        sizes.append(image.shape[:2])
        if progress:
            progress(i + 1, n)
    report: dict[str, Any] = {
        "voc07_map": voc.get(),
        "voc07_ap_per_class": dict(zip(dataset.classes, voc.per_class(), strict=True)),
    }
    if "coco" in metrics:
        report.update(coco_ap(gts, dets, len(dataset.classes), sizes))
    return report


def _describe_detection(res: DetectionResult, threshold: float) -> tuple[dict[str, Any], list[str]]:
    shown = res.above(threshold)
    detections = [
        {"class_id": int(i), "label": lab, "score": float(s), "box": [float(v) for v in b]}
        for i, s, b, lab in zip(shown.ids, shown.scores, shown.boxes, shown.labels, strict=True)
    ]
    lines = [
        f"  {d['score']:8.4f}  {d['label']:<16} [{', '.join(f'{v:.1f}' for v in d['box'])}]"
        for d in detections
    ]
    return {"detections": detections}, lines or [f"  (nothing above {threshold})"]


def _draw_detection(image: np.ndarray, res: DetectionResult, threshold: float) -> np.ndarray:
    from .viz import draw_detections

    return draw_detections(image, res, threshold)


TASKS.add(
    "detection",
    Task(
        "detection",
        DetectionResult,
        "voc07_map",
        "VOC07 mAP (IoU 0.5)",
        evaluate_detection,
        _describe_detection,
        _draw_detection,
    ),
)

# ---------------------------------------------------------------------------- segmentation


def evaluate_segmentation(
    model: Any, dataset: Any, n: int, progress: Progress, metrics: Sequence[str] = ()
) -> dict[str, Any]:
    """Pixel accuracy and mIoU of label maps at each image's own size (ignore: 255)."""
    metric = SegmentationMetric(len(dataset.classes))
    for i in range(n):
        image, label = dataset[i]
        pred = model.segment(image)
        # pixels the input did not cover come back as 255: counted as wrong (background)
        metric.update(label, np.where(pred == 255, 0, pred))
        if progress:
            progress(i + 1, n)
    result = metric.get()
    return {
        "pixel_accuracy": result["pixel_accuracy"],
        "mean_iou": result["mean_iou"],
        "iou_per_class": dict(zip(dataset.classes, result["iou"], strict=True)),
    }


def _describe_segmentation(
    res: SegmentationResult, threshold: float
) -> tuple[dict[str, Any], list[str]]:
    ids, counts = np.unique(res.labels, return_counts=True)
    names = res.class_names
    cover = {
        (names[i] if 0 <= i < len(names) else f"unseen {i}"): float(c / res.labels.size)
        for i, c in zip(ids, counts, strict=True)
    }
    lines = [f"  {f:7.2%}  {name}" for name, f in sorted(cover.items(), key=lambda t: -t[1])]
    return {"size": list(res.labels.shape), "coverage": cover}, lines


def _draw_segmentation(image: np.ndarray, res: SegmentationResult, threshold: float) -> np.ndarray:
    from .viz import draw_segmentation

    return draw_segmentation(image, res)


TASKS.add(
    "segmentation",
    Task(
        "segmentation",
        SegmentationResult,
        "mean_iou",
        "mIoU",
        evaluate_segmentation,
        _describe_segmentation,
        _draw_segmentation,
    ),
)

# ---------------------------------------------------------------------------- pose


def evaluate_pose(
    model: Any, dataset: Any, n: int, progress: Progress, metrics: Sequence[str] = ()
) -> dict[str, Any]:
    """COCO keypoint AP with the ground-truth person boxes as the pose model's input (the
    "GT boxes" protocol of SimpleBaseline's tables: it scores the pose model alone, no
    detector). Crowd and unlabelled people (``ignore``) are neither posed nor scored. A
    pose's score is the mean of its keypoints' heatmap peaks; OKS sigmas are the dataset's
    (``dataset.sigmas``; COCO's 17 for COCO, else a uniform one, see
    :func:`edgecv.datasets.keypoints.default_sigmas`)."""
    sigmas = getattr(dataset, "sigmas", None)
    sigmas = default_sigmas(dataset.classes) if sigmas is None else sigmas
    gts, preds = [], []
    for i in range(n):
        image, label = dataset[i]
        people = label.kept()
        keypoints, scores = model.pose(image, people.boxes)
        gts.append(
            [
                {"keypoints": kp, "area": a}
                for kp, a in zip(people.keypoints, people.areas, strict=True)
            ]
        )
        preds.append(
            [
                {"keypoints": kp, "score": float(s.mean())}
                for kp, s in zip(keypoints, scores, strict=True)
            ]
        )
        if progress:
            progress(i + 1, n)
    if not any(gts):
        raise InvalidInputError(f"the first {n} images hold no person with labelled keypoints")
    ap = keypoint_ap(gts, preds, sigmas)
    return {
        "keypoint_ap": ap["oks_ap"],
        "keypoint_ap50": ap["oks_ap50"],
        "keypoint_ap75": ap["oks_ap75"],
        "people": sum(len(g) for g in gts),
    }


def _describe_pose(res: PoseResult, threshold: float) -> tuple[dict[str, Any], list[str]]:
    people = [
        {
            "crop": [float(v) for v in crop],
            "keypoints": [
                {"joint": j, "x": float(p[0]), "y": float(p[1]), "score": float(s)}
                for j, p, s in zip(res.joint_names, points, scores, strict=True)
            ],
        }
        for crop, points, scores in zip(res.crops, res.keypoints, res.scores, strict=True)
    ]
    lines = [
        f"  person {i}: "
        + " ".join(f"{k['joint']}=({k['x']:.0f},{k['y']:.0f})" for k in p["keypoints"][:5])
        + " ..."
        for i, p in enumerate(people)
    ]
    return {"people": people}, lines or ["  (no person)"]


def _draw_pose(image: np.ndarray, res: PoseResult, threshold: float) -> np.ndarray:
    from .viz import draw_poses

    return draw_poses(image, res)  # joints by their own threshold, not detection scores'


TASKS.add(
    "pose",
    Task(
        "pose",
        PoseResult,
        "keypoint_ap",
        "keypoint AP (OKS .50:.95, ground-truth person boxes)",
        evaluate_pose,
        _describe_pose,
        _draw_pose,
    ),
)
