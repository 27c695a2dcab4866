"""ResNet v1, v2 (He et al. 2015/2016) with optional squeeze-and-excitation (SE-ResNet), the v1b/v1c/v1d variants (Bag of Tricks, 2018) and
v1s (deep 64-wide stem), optionally dilated (output stride 8) for dense prediction.

Attribute trees follow GluonCV's so that its ``.params`` files load unchanged:
v1/v2 keep everything in ``features`` + ``output``; v1b-family uses ``conv1``,
``bn1``, ``layer1..4`` and ``fc``.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from . import layers
from .squeeze_excite import excite, gate_layers

# depth -> (block kind, blocks per stage)
_LAYOUT = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_WIDTHS = {"basic": (64, 64, 128, 256, 512), "bottleneck": (64, 256, 512, 1024, 2048)}


def _conv3x3(channels: int, stride: int, in_channels: int) -> nn.Conv2D:
    return nn.Conv2D(channels, 3, stride, 1, use_bias=False, in_channels=in_channels)


def _layout(depth: int) -> tuple[str, tuple[int, ...]]:
    if depth not in _LAYOUT:
        raise ValueError(f"ResNet depth must be one of {sorted(_LAYOUT)}, got {depth}")
    return _LAYOUT[depth]


class _ResidualV1(HybridBlock):
    """Post-activation residual unit: relu(body(x) + shortcut(x))."""

    def __init__(
        self,
        kind: str,
        channels: int,
        stride: int,
        downsample: bool,
        in_channels: int,
        squeeze_excite: bool = False,
    ):
        super().__init__()
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            if kind == "basic":
                self.body.add(_conv3x3(channels, stride, in_channels), nn.BatchNorm())
                self.body.add(nn.Activation("relu"))
                self.body.add(_conv3x3(channels, 1, channels), nn.BatchNorm())
            else:
                mid = channels // 4
                # v1 strides in the first 1x1 conv, and its 1x1 convs carry a bias
                self.body.add(nn.Conv2D(mid, 1, stride, in_channels=in_channels), nn.BatchNorm())
                self.body.add(nn.Activation("relu"))
                self.body.add(_conv3x3(mid, 1, mid), nn.BatchNorm(), nn.Activation("relu"))
                self.body.add(nn.Conv2D(channels, 1, 1, in_channels=mid), nn.BatchNorm())
            # SE-ResNet: the residual branch gated per channel before the sum
            self.se = gate_layers(channels, channels // 16, dense=True) if squeeze_excite else None
            if downsample:
                self.downsample = nn.HybridSequential(prefix="")
                self.downsample.add(
                    nn.Conv2D(channels, 1, stride, use_bias=False, in_channels=in_channels),
                    nn.BatchNorm(),
                )
            else:
                self.downsample = None

    def hybrid_forward(self, F, x):  # noqa: N803
        shortcut = self.downsample(x) if self.downsample is not None else x
        out = self.body(x)
        if self.se is not None:
            out = excite(F, out, self.se)
        return F.Activation(out + shortcut, act_type="relu")


class _ResidualV2(HybridBlock):
    """Pre-activation residual unit: body(relu(bn(x))) + shortcut; a projection shortcut
    takes relu(bn(x)), or ``x`` itself with ``project_raw`` (GluonCV's CIFAR ResNet v2)."""

    def __init__(
        self,
        kind: str,
        channels: int,
        stride: int,
        downsample: bool,
        in_channels: int,
        squeeze_excite: bool = False,
        project_raw: bool = False,
    ):
        super().__init__()
        self.kind = kind
        self.project_raw = project_raw
        with self.name_scope():
            self.bn1 = nn.BatchNorm()
            if kind == "basic":
                self.conv1 = _conv3x3(channels, stride, in_channels)
                self.bn2 = nn.BatchNorm()
                self.conv2 = _conv3x3(channels, 1, channels)
            else:
                mid = channels // 4
                self.conv1 = nn.Conv2D(mid, 1, 1, use_bias=False, in_channels=in_channels)
                self.bn2 = nn.BatchNorm()
                self.conv2 = _conv3x3(mid, stride, mid)
                self.bn3 = nn.BatchNorm()
                self.conv3 = nn.Conv2D(channels, 1, 1, use_bias=False, in_channels=mid)
            self.se = gate_layers(channels, channels // 16, dense=True) if squeeze_excite else None
            if downsample:
                self.downsample = nn.Conv2D(
                    channels, 1, stride, use_bias=False, in_channels=in_channels
                )
            else:
                self.downsample = None

    def hybrid_forward(self, F, x):  # noqa: N803
        shortcut = x
        x = F.Activation(self.bn1(x), act_type="relu")
        if self.downsample is not None:
            shortcut = self.downsample(shortcut if self.project_raw else x)
        x = self.conv1(x)
        x = self.conv2(F.Activation(self.bn2(x), act_type="relu"))
        if self.kind == "bottleneck":
            x = self.conv3(F.Activation(self.bn3(x), act_type="relu"))
        if self.se is not None:
            x = excite(F, x, self.se)
        return x + shortcut


class ResNetV1V2(HybridBlock):
    """ResNet v1 (post-activation) or v2 (pre-activation), GluonCV ``features`` layout;
    ``squeeze_excite``: SE-ResNet (each unit's residual branch gated per channel)."""

    def __init__(self, depth: int, version: int, classes: int = 1000, squeeze_excite: bool = False):
        super().__init__()
        kind, blocks = _layout(depth)
        widths = _WIDTHS[kind]
        unit = _ResidualV1 if version == 1 else _ResidualV2
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            if version == 2:
                # input normalisation layer: fixed gamma/beta, only running stats
                self.features.add(nn.BatchNorm(scale=False, center=False))
            self.features.add(nn.Conv2D(widths[0], 7, 2, 3, use_bias=False), nn.BatchNorm())
            self.features.add(nn.Activation("relu"), nn.MaxPool2D(3, 2, 1))
            in_channels = widths[0]
            for stage, count in enumerate(blocks):
                channels, stride = widths[stage + 1], 1 if stage == 0 else 2
                layer = nn.HybridSequential(prefix=f"stage{stage + 1}_")
                with layer.name_scope():
                    se = squeeze_excite
                    layer.add(
                        unit(kind, channels, stride, channels != in_channels, in_channels, se)
                    )
                    for _ in range(count - 1):
                        layer.add(unit(kind, channels, 1, False, channels, se))
                self.features.add(layer)
                in_channels = channels
            if version == 2:
                self.features.add(nn.BatchNorm(), nn.Activation("relu"))
            self.features.add(nn.GlobalAvgPool2D())
            if version == 2:
                self.features.add(nn.Flatten())
            self.output = nn.Dense(classes, in_units=in_channels)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.output(self.features(x))


class _BlockV1b(HybridBlock):
    """v1b residual unit: stride on the 3x3 conv; optional average-pool shortcut (v1d)."""

    def __init__(
        self,
        kind: str,
        planes: int,
        stride: int,
        downsample: HybridBlock | None,
        dilation: int = 1,
        group_norm: bool = False,
    ):
        super().__init__()
        self.kind = kind
        d = dilation

        def norm(channels: int) -> HybridBlock:
            return layers.GroupNorm(channels) if group_norm else nn.BatchNorm()

        with self.name_scope():
            if kind == "basic":
                self.conv1 = nn.Conv2D(planes, 3, stride, d, dilation=d, use_bias=False)
                self.bn1 = norm(planes)
                self.conv2 = nn.Conv2D(planes, 3, 1, d, dilation=d, use_bias=False)
                self.bn2 = norm(planes)
            else:
                self.conv1 = nn.Conv2D(planes, 1, use_bias=False)
                self.bn1 = norm(planes)
                self.conv2 = nn.Conv2D(planes, 3, stride, d, dilation=d, use_bias=False)
                self.bn2 = norm(planes)
                self.conv3 = nn.Conv2D(planes * 4, 1, use_bias=False)
                self.bn3 = norm(planes * 4)
            self.downsample = downsample

    def hybrid_forward(self, F, x):  # noqa: N803
        out = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        out = self.bn2(self.conv2(out))
        if self.kind == "bottleneck":
            out = self.bn3(self.conv3(F.Activation(out, act_type="relu")))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.Activation(out + shortcut, act_type="relu")


class ResNetV1b(HybridBlock):
    """ResNet v1b; ``deep_stem`` gives v1c, ``deep_stem`` + ``avg_down`` gives v1d,
    ``deep_stem`` with ``stem_width`` 64 gives v1s. ``dilated``: layer3 and layer4 keep
    stride 1 and dilate their 3x3 convs by 2 and 4 (the first block of layer4 by 2), as the
    dilated backbones of FCN/PSPNet/DeepLab do: output stride 8 instead of 32.
    ``strides``: each layer's first stride (SSD's ResNet-34 keeps layer3 at stride 1).
    ``group_norm``: GroupNorm (32 groups) for every BatchNorm (GluonCV's ``_gn`` models)."""

    def __init__(
        self,
        depth: int,
        classes: int = 1000,
        deep_stem: bool = False,
        avg_down: bool = False,
        stem_width: int = 32,
        dilated: bool = False,
        strides: tuple[int, int, int, int] = (1, 2, 2, 2),
        group_norm: bool = False,
    ):
        super().__init__()
        kind, blocks = _layout(depth)
        expansion = 1 if kind == "basic" else 4
        if group_norm and deep_stem:
            raise ValueError("ResNet v1b: group_norm takes the plain 7x7 stem (GluonCV's _gn)")
        with self.name_scope():
            if deep_stem:
                self.conv1 = nn.HybridSequential(prefix="conv1_")
                self.conv1.add(*layers.deep_stem(stem_width))
            else:
                self.conv1 = nn.Conv2D(64, 7, 2, 3, use_bias=False)
            self.bn1 = layers.GroupNorm(64) if group_norm else nn.BatchNorm()
            self.relu = nn.Activation("relu")
            self.maxpool = nn.MaxPool2D(3, 2, 1)
            inplanes = 64
            for stage, count in enumerate(blocks):
                planes, stride = 64 * 2**stage, strides[stage]
                # (first block's, other blocks') dilation
                first, rest = 1, 1
                if dilated and stage >= 2:
                    stride, rest = 1, 2 ** (stage - 1)
                    first = 1 if rest == 2 else 2
                layer = nn.HybridSequential(prefix=f"layers{stage + 1}_")
                with layer.name_scope():
                    downsample = None
                    if stride != 1 or inplanes != planes * expansion:
                        downsample = nn.HybridSequential(prefix="down_")
                        # (v1d pools in every stage's projection, a 1x1 pool in the first)
                        downsample.add(
                            *layers.projection(planes * expansion, stride, avg_down, group_norm)
                        )
                    layer.add(_BlockV1b(kind, planes, stride, downsample, first, group_norm))
                    for _ in range(count - 1):
                        layer.add(_BlockV1b(kind, planes, 1, None, rest, group_norm))
                setattr(self, f"layer{stage + 1}", layer)
                inplanes = planes * expansion
            self.avgpool = nn.GlobalAvgPool2D()
            self.flat = nn.Flatten()
            self.fc = nn.Dense(classes, in_units=inplanes)

    def stem_and_layers(self) -> dict[str, HybridBlock]:
        return stem_and_layers(self)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.fc(self.flat(self.avgpool(trunk(self, x))))


def stem_and_layers(net: HybridBlock) -> dict[str, HybridBlock]:
    """conv1, bn1, relu, maxpool, layer1..4 of a v1b-style network (ResNetV1b, ResNeSt) by
    name, in order: what dense-prediction models build on."""
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return {name: getattr(net, name) for name in names}


def trunk(net: HybridBlock, x):  # x: an MXNet symbol or array
    """``x`` through a v1b-style network's stem and its four stages."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def resnet_v1(depth: int, classes: int = 1000, squeeze_excite: bool = False) -> ResNetV1V2:
    return ResNetV1V2(depth, 1, classes, squeeze_excite)


def resnet_v2(depth: int, classes: int = 1000, squeeze_excite: bool = False) -> ResNetV1V2:
    return ResNetV1V2(depth, 2, classes, squeeze_excite)


def resnet_v1b(depth: int, classes: int = 1000, **kwargs: bool) -> ResNetV1b:
    return ResNetV1b(depth, classes, **kwargs)
