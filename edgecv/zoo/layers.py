"""Building blocks shared by the zoo's networks."""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn


def conv_bn(
    channels: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    act: str | None = "relu",
    in_channels: int = 0,
) -> list[HybridBlock]:
    """Conv (no bias, 'same' padding) + BatchNorm (+ activation), as a list of layers."""
    layers: list[HybridBlock] = [
        nn.Conv2D(
            channels,
            kernel,
            stride,
            kernel // 2,
            groups=groups,
            use_bias=False,
            in_channels=in_channels,
        ),
        nn.BatchNorm(in_channels=channels),
    ]
    if act is not None:
        layers.append(activation(act))
    return layers


def deep_stem(width: int) -> list[HybridBlock]:
    """The deep stem of ResNet v1c/v1d/v1s and the "e" ResNeXts, up to its last BatchNorm:
    three 3x3 convs (the first strided) ``width``, ``width`` and ``2 * width`` wide."""
    return [
        *conv_bn(width, 3, 2),
        *conv_bn(width, 3),
        nn.Conv2D(2 * width, 3, 1, 1, use_bias=False),
    ]


def projection(channels: int, stride: int, pool: bool) -> list[HybridBlock]:
    """A residual unit's projection shortcut: strided 1x1 conv + BatchNorm, or (``pool``,
    ResNet v1d's) a ``stride`` x ``stride`` average pool (ceil mode, padding not counted)
    before an unstrided one."""
    if not pool:
        return [nn.Conv2D(channels, 1, stride, use_bias=False), nn.BatchNorm()]
    average = nn.AvgPool2D(stride, stride, ceil_mode=True, count_include_pad=False)
    return [average, nn.Conv2D(channels, 1, 1, use_bias=False), nn.BatchNorm()]


def activation(kind: str) -> HybridBlock:
    """An activation layer by name: relu, relu6, hard_sigmoid, hard_swish."""
    if kind == "relu":
        return nn.Activation("relu")
    if kind == "relu6":
        return ReLU6()
    if kind == "hard_sigmoid":
        return HardSigmoid()
    if kind == "hard_swish":
        return HardSwish()
    raise ValueError(f"unknown activation {kind!r}")


class ReLU6(HybridBlock):
    """min(max(x, 0), 6)."""

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return F.clip(x, 0.0, 6.0)


class HardSigmoid(HybridBlock):
    """relu6(x + 3) / 6, as in MobileNetV3."""

    def hybrid_forward(self, F, x):  # noqa: N803
        return F.clip(x + 3.0, 0.0, 6.0) / 6.0


class HardSwish(HybridBlock):
    """x * hard_sigmoid(x), as in MobileNetV3."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.act = HardSigmoid()

    def hybrid_forward(self, F, x):  # noqa: N803
        return x * self.act(x)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


SCORE_CUT = 0.01  # GluonCV's box_nms valid_thresh: candidates must score above it


def nms_op(nms_thresh: float, nms_topk: int, post_nms: int) -> dict:
    """The manifest's ``nms`` post-processing op with the same settings as :func:`final_detections`."""
    return {
        "op": "nms",
        "iou_threshold": nms_thresh,
        "score_threshold": SCORE_CUT,
        "topk": nms_topk,
        "max_detections": post_nms,
        "class_agnostic": False,
    }


def final_detections(F, candidates, nms_thresh: float, nms_topk: int, post_nms: int):  # noqa: N803
    """GluonCV's detector output from (B, N, 6) candidates [id, score, x1, y1, x2, y2]:
    class-aware box_nms (scores above 0.01, top ``nms_topk`` first), first ``post_nms`` kept;
    returns (ids, scores, boxes) with -1 rows as padding."""
    result = F.contrib.box_nms(
        candidates,
        overlap_thresh=nms_thresh,
        valid_thresh=SCORE_CUT,
        topk=nms_topk,
        id_index=0,
        score_index=1,
        coord_start=2,
        force_suppress=False,
    )
    result = result.slice_axis(axis=1, begin=0, end=post_nms)
    return (
        result.slice_axis(axis=-1, begin=0, end=1),
        result.slice_axis(axis=-1, begin=1, end=2),
        result.slice_axis(axis=-1, begin=2, end=None),
    )
