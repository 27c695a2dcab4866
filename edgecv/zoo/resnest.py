"""ResNeSt (Zhang et al. 2020): ResNet v1d (deep stem, average-pool projections) whose
bottleneck 3x3 convolutions are split-attention convolutions, GluonCV layout.

A split-attention conv computes ``radix`` parallel grouped 3x3 convs in one (radix x
cardinality groups), averages their sum globally, and from that picks per channel a softmax
mixture of the radix branches. A strided unit keeps its 3x3 conv at stride 1 and averages
3x3 afterwards ("avd"). GluonCV's DropBlock is the identity at inference, so it has no
counterpart here; ResNeSt-200/269 keep a dropout before ``fc``.

Attribute tree as GluonCV's ``ResNeSt`` (``conv1`` deep stem, ``bn1``, ``layer1..4`` of
units with ``conv1``, ``bn1``, ``conv2`` = split attention with ``conv``, ``bn``, ``fc1``,
``bn1``, ``fc2``, ``conv3``, ``bn3``, ``downsample``; ``fc``), so its ``.params`` files load
unchanged. ``dilated`` gives the output-stride-8 backbone of GluonCV's DeepLab models.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from . import layers, resnet

# depth -> (units per stage, deep-stem width, dropout before fc), GluonCV's presets
_PRESETS = {
    14: ((1, 1, 1, 1), 32, 0.0),
    26: ((2, 2, 2, 2), 32, 0.0),
    50: ((3, 4, 6, 3), 32, 0.0),
    101: ((3, 4, 23, 3), 64, 0.0),
    200: ((3, 24, 36, 3), 64, 0.2),
    269: ((3, 30, 48, 8), 64, 0.2),
}
_EXPANSION = 4


class SplitAttentionConv(HybridBlock):
    """A 3x3 conv to ``radix`` x ``channels`` (BN, ReLU), its ``radix`` branches summed,
    pooled and turned by two grouped 1x1 convs into per-branch, per-channel weights: a
    softmax over the branches (a sigmoid gate for radix 1). Output: the weighted sum of the
    branches, ``channels`` wide. Written with split, global pooling, reshape/transpose,
    softmax and broadcast multiply, which export to ONNX opset 13 and compile."""

    def __init__(
        self,
        channels: int,
        stride: int = 1,
        dilation: int = 1,
        radix: int = 2,
        cardinality: int = 1,
        reduction: int = 2,
    ):
        super().__init__()
        if radix < 1 or cardinality < 1 or channels % cardinality:
            raise ValueError(
                f"split attention: {channels} channels, radix {radix} and cardinality "
                f"{cardinality} do not make whole groups"
            )
        self.channels, self.radix, self.cardinality = channels, radix, cardinality
        reduced = max(channels * radix // 2 // reduction, 32)  # GluonCV's floor of 32
        d = dilation
        with self.name_scope():
            self.conv = nn.Conv2D(
                channels * radix, 3, stride, d, d, groups=cardinality * radix, use_bias=False
            )
            self.bn = nn.BatchNorm()
            self.fc1 = nn.Conv2D(reduced, 1, groups=cardinality)
            self.bn1 = nn.BatchNorm()
            self.fc2 = nn.Conv2D(channels * radix, 1, groups=cardinality)

    def hybrid_forward(self, F, x):  # noqa: N803
        x = F.Activation(self.bn(self.conv(x)), act_type="relu")
        branches = F.split(x, num_outputs=self.radix, axis=1) if self.radix > 1 else [x]
        total = branches[0]
        for branch in branches[1:]:
            total = total + branch
        pooled = F.Pooling(total, kernel=(1, 1), pool_type="avg", global_pool=True)
        logits = self.fc2(F.Activation(self.bn1(self.fc1(pooled)), act_type="relu"))
        if self.radix == 1:
            return F.broadcast_mul(x, F.sigmoid(logits))
        # fc2's channels run (group, branch, channel in group); x's (branch, group, channel)
        weights = F.softmax(logits.reshape((0, self.cardinality, self.radix, -1)), axis=2)
        weights = weights.transpose((0, 2, 1, 3)).reshape((0, -1, 1, 1))
        weighted = F.split(F.broadcast_mul(x, weights), num_outputs=self.radix, axis=1)
        out = weighted[0]
        for branch in weighted[1:]:
            out = out + branch
        return out


class _SplitBottleneck(HybridBlock):
    """relu(bn3(conv3(avd(split_attention(relu(bn1(conv1(x))))))) + shortcut(x))."""

    def __init__(
        self,
        planes: int,
        stride: int,
        downsample: HybridBlock | None,
        dilation: int,
        avd: bool,
        radix: int,
        cardinality: int,
        bottleneck_width: int,
    ):
        super().__init__()
        width = planes * bottleneck_width // 64 * cardinality
        with self.name_scope():
            self.conv1 = nn.Conv2D(width, 1, use_bias=False)
            self.bn1 = nn.BatchNorm()
            self.conv2 = SplitAttentionConv(
                width, 1 if avd else stride, dilation, radix, cardinality
            )
            # 3x3 average (padding counted, MXNet's default) after the unstrided conv
            self.avd_layer = nn.AvgPool2D(3, stride, 1) if avd else None
            self.conv3 = nn.Conv2D(planes * _EXPANSION, 1, use_bias=False)
            self.bn3 = nn.BatchNorm()
            self.downsample = downsample

    def hybrid_forward(self, F, x):  # noqa: N803
        out = self.conv2(F.Activation(self.bn1(self.conv1(x)), act_type="relu"))
        if self.avd_layer is not None:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.Activation(out + shortcut, act_type="relu")


class ResNeSt(HybridBlock):
    """ResNeSt-``depth`` (14, 26, 50, 101, 200, 269). ``dilated``: layer3 and layer4 keep
    stride 1 and dilate by 2 and 4 (each layer's first unit by half that, and averaging 3x3
    at stride 1 as a strided unit would), as GluonCV's segmentation backbones."""

    def __init__(
        self,
        depth: int,
        classes: int = 1000,
        dilated: bool = False,
        radix: int = 2,
        cardinality: int = 1,
        bottleneck_width: int = 64,
    ):
        super().__init__()
        if depth not in _PRESETS:
            raise ValueError(f"ResNeSt depth must be one of {sorted(_PRESETS)}, got {depth}")
        blocks, stem_width, final_drop = _PRESETS[depth]
        with self.name_scope():
            self.conv1 = nn.HybridSequential(prefix="conv1_")
            self.conv1.add(*layers.deep_stem(stem_width))
            self.bn1 = nn.BatchNorm()
            self.relu = nn.Activation("relu")
            self.maxpool = nn.MaxPool2D(3, 2, 1)
            inplanes = 2 * stem_width
            for stage, count in enumerate(blocks):
                planes, stride = 64 * 2**stage, 1 if stage == 0 else 2
                first, rest = 1, 1  # the first unit's and the other units' dilation
                if dilated and stage >= 2:
                    stride, rest = 1, 2 ** (stage - 1)
                    first = rest // 2
                layer = nn.HybridSequential(prefix=f"layers{stage + 1}_")
                with layer.name_scope():
                    downsample = None
                    if stride != 1 or inplanes != planes * _EXPANSION:
                        downsample = nn.HybridSequential(prefix="down_")
                        downsample.add(*layers.projection(planes * _EXPANSION, stride, True))
                    avd = stride > 1 or first != rest
                    unit = (radix, cardinality, bottleneck_width)
                    layer.add(_SplitBottleneck(planes, stride, downsample, first, avd, *unit))
                    for _ in range(count - 1):
                        layer.add(_SplitBottleneck(planes, 1, None, rest, False, *unit))
                setattr(self, f"layer{stage + 1}", layer)
                inplanes = planes * _EXPANSION
            self.avgpool = nn.GlobalAvgPool2D()
            self.flat = nn.Flatten()
            self.drop = nn.Dropout(final_drop) if final_drop > 0 else None
            self.fc = nn.Dense(classes, in_units=inplanes)

    def stem_and_layers(self) -> dict[str, HybridBlock]:
        return resnet.stem_and_layers(self)

    def hybrid_forward(self, F, x):  # noqa: N803
        x = self.flat(self.avgpool(resnet.trunk(self, x)))
        if self.drop is not None:
            x = self.drop(x)
        return self.fc(x)


def resnest(depth: int, classes: int = 1000, **kwargs) -> ResNeSt:
    return ResNeSt(depth, classes, **kwargs)
