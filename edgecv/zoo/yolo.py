"""YOLOv3 (Redmon & Farhadi 2018) with Darknet-53 or MobileNet backbones, GluonCV layout.

Inference returns GluonCV's final detections ``(ids, scores, boxes)``: every
(anchor, class) pair scored sigmoid(objectness) × sigmoid(class), then class-aware
``box_nms`` (IoU 0.45, top 400 before, 100 after). With ``raw_outputs = True`` the
forward returns the three raw head tensors instead: that is the deployable graph, and
edgecv's C++ runtime performs the same decode and NMS.
"""

from __future__ import annotations

import numpy as np
from mxnet.gluon import HybridBlock, nn

from .darknet import DarknetV3, conv_bn_leaky
from .layers import final_detections, nms_op
from .mobilenet import MobileNetV1

# anchors (w, h in input pixels) per output, deepest (stride 32) first
ANCHORS = ((116, 90, 156, 198, 373, 326), (30, 61, 62, 45, 59, 119), (10, 13, 16, 30, 33, 23))
STRIDES = (32, 16, 8)
_OFFSET_GRID = 128  # GluonCV stores a 128x128 grid of cell offsets as a parameter


class _DetectionBlock(HybridBlock):
    """Five alternating 1x1/3x3 convs (route) and a 3x3 tip feeding the output."""

    def __init__(self, channels: int):
        super().__init__()
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            for _ in range(2):
                self.body.add(conv_bn_leaky(channels, 1), conv_bn_leaky(channels * 2, 3))
            self.body.add(conv_bn_leaky(channels, 1))
            self.tip = conv_bn_leaky(channels * 2, 3)

    def hybrid_forward(self, F, x):  # noqa: N803
        route = self.body(x)
        return route, self.tip(route)


class _YoloOutput(HybridBlock):
    def __init__(self, num_classes: int, anchors: tuple[int, ...], stride: int):
        super().__init__()
        self.num_classes = num_classes
        self.num_anchors = len(anchors) // 2
        self.stride = stride
        self.raw_output = False
        grid = np.stack(np.meshgrid(np.arange(_OFFSET_GRID), np.arange(_OFFSET_GRID)), axis=-1)
        with self.name_scope():
            self.prediction = nn.Conv2D(self.num_anchors * (5 + num_classes), 1)
            self._anchors_init = np.array(anchors, np.float32).reshape(1, 1, -1, 2)
            self.anchors = self.params.get_constant("anchors", self._anchors_init)
            self.offsets = self.params.get_constant(
                "offsets", grid.reshape(1, 1, _OFFSET_GRID, _OFFSET_GRID, 2).astype(np.float32)
            )

    def anchor_values(self) -> np.ndarray:
        """The anchors in use: loaded from a parameter file, or the construction values."""
        from mxnet.gluon.parameter import DeferredInitializationError

        try:
            return self.anchors.data().asnumpy()
        except DeferredInitializationError:
            return self._anchors_init

    def decode(self, F, raw, anchors, offsets):  # noqa: N803
        """raw (B, A*(5+C), H, W) → per (cell, anchor, class): ids, scores, corner boxes."""
        c, a = self.num_classes, self.num_anchors
        pred = raw.reshape((0, a * (5 + c), -1)).transpose((0, 2, 1)).reshape((0, -1, a, 5 + c))
        offsets = F.slice_like(offsets, raw * 0, axes=(2, 3)).reshape((1, -1, 1, 2))
        centers = F.broadcast_add(F.sigmoid(pred.slice_axis(axis=-1, begin=0, end=2)), offsets)
        centers = centers * self.stride
        scales = F.broadcast_mul(F.exp(pred.slice_axis(axis=-1, begin=2, end=4)), anchors)
        objectness = F.sigmoid(pred.slice_axis(axis=-1, begin=4, end=5))
        class_scores = F.broadcast_mul(
            F.sigmoid(pred.slice_axis(axis=-1, begin=5, end=None)), objectness
        )
        boxes = F.concat(centers - scales / 2, centers + scales / 2, dim=-1)  # (B, HW, A, 4)
        boxes = F.tile(boxes.expand_dims(0), reps=(c, 1, 1, 1, 1))  # (C, B, HW, A, 4)
        scores = class_scores.transpose((3, 0, 1, 2)).expand_dims(-1)  # (C, B, HW, A, 1)
        ids = F.broadcast_add(scores * 0, F.arange(0, c).reshape((-1, 1, 1, 1, 1)))
        dets = F.concat(ids, scores, boxes, dim=-1).transpose((1, 0, 2, 3, 4))
        return dets.reshape((0, -1, 6))

    def hybrid_forward(self, F, x, anchors, offsets):  # noqa: N803
        raw = self.prediction(x)
        return raw if self.raw_output else self.decode(F, raw, anchors, offsets)


class YOLOV3(HybridBlock):
    """``stages`` (backbone cut in three), ``yolo_blocks``, ``transitions``, ``yolo_outputs``."""

    def __init__(
        self,
        stages: list[HybridBlock],
        channels: tuple[int, int, int],
        num_classes: int,
        nms_thresh: float = 0.45,
        nms_topk: int = 400,
        post_nms: int = 100,
        anchors: tuple[tuple[int, ...], ...] = ANCHORS,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.nms_thresh, self.nms_topk, self.post_nms = nms_thresh, nms_topk, post_nms
        with self.name_scope():
            self.stages = nn.HybridSequential(prefix="")
            self.transitions = nn.HybridSequential(prefix="")
            self.yolo_blocks = nn.HybridSequential(prefix="")
            self.yolo_outputs = nn.HybridSequential(prefix="")
            for stage in stages:
                self.stages.add(stage)
            for i, (ch, pairs, stride) in enumerate(zip(channels, anchors, STRIDES, strict=True)):
                self.yolo_blocks.add(_DetectionBlock(ch))
                self.yolo_outputs.add(_YoloOutput(num_classes, pairs, stride))
                if i > 0:
                    self.transitions.add(conv_bn_leaky(ch, 1))

    def prepare_deploy(self, input_shape: tuple[int, ...]) -> None:
        """Switch to the deployable graph (raw heads), after one full forward that completes
        the deferred initialisation of every parameter, anchors and offsets included."""
        import mxnet as mx

        self.raw_outputs = False
        self(mx.nd.zeros(input_shape))
        self.raw_outputs = True

    def deploy_head(self) -> dict:
        """Names of the raw outputs and the post-processing the runtime applies to them."""
        names = [f"yolo_s{out.stride}" for out in self.yolo_outputs]
        anchors = [out.anchor_values().ravel().tolist() for out in self.yolo_outputs]
        return {
            "outputs": names,
            "postprocess": [
                {
                    "op": "yolo3_decode",
                    "outputs": names,
                    "strides": [out.stride for out in self.yolo_outputs],
                    "anchors": anchors,
                    "num_classes": self.num_classes,
                },
                nms_op(self.nms_thresh, self.nms_topk, self.post_nms),
            ],
        }

    @property
    def raw_outputs(self) -> bool:
        """True: forward returns the raw head tensors (the deployable graph)."""
        return self.yolo_outputs[0].raw_output

    @raw_outputs.setter
    def raw_outputs(self, value: bool) -> None:
        for out in self.yolo_outputs:
            out.raw_output = value

    def hybrid_forward(self, F, x):  # noqa: N803
        routes = []
        for stage in self.stages:
            x = stage(x)
            routes.append(x)
        outputs = []
        for i in range(3):
            x, tip = self.yolo_blocks[i](x)
            outputs.append(self.yolo_outputs[i](tip))
            if i == 2:
                break
            # nearest 2x upsampling; inputs are multiples of 32, so shapes match the route
            x = F.UpSampling(self.transitions[i](x), scale=2, sample_type="nearest")
            x = F.concat(x, routes[::-1][i + 1], dim=1)
        if self.raw_outputs:
            return tuple(outputs)
        return final_detections(
            F, F.concat(*outputs, dim=1), self.nms_thresh, self.nms_topk, self.post_nms
        )


def _mobilenet_stages(multiplier: float) -> list[HybridBlock]:
    features = MobileNetV1(multiplier).features
    return [features[:33], features[33:69], features[69:-2]]


def _darknet_stages() -> list[HybridBlock]:
    features = DarknetV3().features
    return [features[:15], features[15:24], features[24:]]


def yolo3(
    backbone: str,
    classes: int = 80,
    multiplier: float = 1.0,
    anchors: tuple[tuple[int, ...], ...] = ANCHORS,
) -> YOLOV3:
    """``anchors``: (w, h) pairs in input pixels for the stride 32, 16 and 8 outputs."""
    if backbone == "darknet53":
        return YOLOV3(_darknet_stages(), (512, 256, 128), classes, anchors=anchors)
    if backbone == "mobilenet":
        channels = (512, 256, 128) if multiplier >= 1.0 else (256, 128, 128)
        return YOLOV3(_mobilenet_stages(multiplier), channels, classes, anchors=anchors)
    raise ValueError(f"unknown YOLOv3 backbone {backbone!r}")
