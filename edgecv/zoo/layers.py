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


def projection(
    channels: int, stride: int, pool: bool, group_norm: bool = False
) -> list[HybridBlock]:
    """A residual unit's projection shortcut: strided 1x1 conv + BatchNorm (or GroupNorm),
    or (``pool``, ResNet v1d's) a ``stride`` x ``stride`` average pool (ceil mode, padding
    not counted) before an unstrided one."""
    norm = GroupNorm(channels) if group_norm else nn.BatchNorm()
    if not pool:
        return [nn.Conv2D(channels, 1, stride, use_bias=False), norm]
    average = nn.AvgPool2D(stride, stride, ceil_mode=True, count_include_pad=False)
    return [average, nn.Conv2D(channels, 1, 1, use_bias=False), norm]


class GroupNorm(HybridBlock):
    """Group normalisation (Wu and He 2018) with a per-channel ``gamma`` and ``beta``, as
    GluonCV's (MXNet 1.x's own GroupNorm op scales per group). Written with reshapes,
    global average pools, products and broadcasts, which export to ONNX opset 13 and
    compile: ONNX
    has no GroupNormalization before opset 18, and mx2onnx's ``mean`` (ReduceMean with an
    ``axes`` attribute) fails its own check against the installed onnx's newer opset."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        if channels % groups:
            raise ValueError(f"GroupNorm: {channels} channels do not split into {groups} groups")
        self.groups, self.eps = groups, eps
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=(channels,), init="ones")
            self.beta = self.params.get("beta", shape=(channels,), init="zeros")

    def hybrid_forward(self, F, x, gamma, beta):  # noqa: N803
        def mean(y):  # over each group: (N, G, L, 1) -> (N, G, 1, 1)
            return F.Pooling(y, kernel=(1, 1), pool_type="avg", global_pool=True)

        grouped = x.reshape((0, self.groups, -1, 1))
        centred = F.broadcast_sub(grouped, mean(grouped))
        var = mean(centred * centred)  # (mx2onnx writes square as Pow with an int64 2)
        y = F.broadcast_div(centred, F.sqrt(var + self.eps)).reshape_like(x)
        y = F.broadcast_mul(y, gamma.reshape((1, -1, 1, 1)))
        return F.broadcast_add(y, beta.reshape((1, -1, 1, 1)))


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
