"""MobileNetV3 large/small (Howard et al. 2019), GluonCV layout."""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from .layers import activation, conv_bn, make_divisible

# (kernel, expanded channels, out channels, squeeze-excite, activation, stride), from the paper
_CONFIGS = {
    "large": (
        (3, 16, 16, False, "relu", 1),
        (3, 64, 24, False, "relu", 2),
        (3, 72, 24, False, "relu", 1),
        (5, 72, 40, True, "relu", 2),
        (5, 120, 40, True, "relu", 1),
        (5, 120, 40, True, "relu", 1),
        (3, 240, 80, False, "hard_swish", 2),
        (3, 200, 80, False, "hard_swish", 1),
        (3, 184, 80, False, "hard_swish", 1),
        (3, 184, 80, False, "hard_swish", 1),
        (3, 480, 112, True, "hard_swish", 1),
        (3, 672, 112, True, "hard_swish", 1),
        (5, 672, 160, True, "hard_swish", 2),
        (5, 960, 160, True, "hard_swish", 1),
        (5, 960, 160, True, "hard_swish", 1),
    ),
    "small": (
        (3, 16, 16, True, "relu", 2),
        (3, 72, 24, False, "relu", 2),
        (3, 88, 24, False, "relu", 1),
        (5, 96, 40, True, "hard_swish", 2),
        (5, 240, 40, True, "hard_swish", 1),
        (5, 240, 40, True, "hard_swish", 1),
        (5, 120, 48, True, "hard_swish", 1),
        (5, 144, 48, True, "hard_swish", 1),
        (5, 288, 96, True, "hard_swish", 2),
        (5, 576, 96, True, "hard_swish", 1),
        (5, 576, 96, True, "hard_swish", 1),
    ),
}
_LAST_CONV = {"large": 960, "small": 576}


class _ConvUnit(HybridBlock):
    """conv → bn (→ activation), named ``conv``/``bn``/``act`` as in GluonCV."""

    def __init__(self, channels: int, kernel: int, stride: int = 1, groups: int = 1, act=None):
        super().__init__()
        with self.name_scope():
            self.conv, self.bn = conv_bn(channels, kernel, stride, groups, act=None)
            self.act = activation(act) if act else None

    def hybrid_forward(self, F, x):  # noqa: N803
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class _SqueezeExcite(HybridBlock):
    def __init__(self, channels: int):
        super().__init__()
        reduced = make_divisible(channels // 4)
        with self.name_scope():
            self.pool = nn.GlobalAvgPool2D()
            self.conv1 = nn.Conv2D(reduced, 1, in_channels=channels)
            self.act1 = activation("relu")
            self.conv2 = nn.Conv2D(channels, 1, in_channels=reduced)
            self.act2 = activation("hard_sigmoid")

    def hybrid_forward(self, F, x):  # noqa: N803
        w = self.act2(self.conv2(self.act1(self.conv1(self.pool(x)))))
        return F.broadcast_mul(x, w)


class _ResUnit(HybridBlock):
    def __init__(
        self, in_ch: int, kernel: int, exp: int, out: int, se: bool, act: str, stride: int
    ):
        super().__init__()
        self.use_shortcut = stride == 1 and in_ch == out
        with self.name_scope():
            self.expand = _ConvUnit(exp, 1, act=act) if exp != in_ch else None
            self.conv1 = _ConvUnit(exp, kernel, stride, groups=exp, act=act)
            self.se = _SqueezeExcite(exp) if se else None
            self.conv2 = _ConvUnit(out, 1)

    def hybrid_forward(self, F, x):  # noqa: N803
        out = self.expand(x) if self.expand is not None else x
        out = self.conv1(out)
        if self.se is not None:
            out = self.se(out)
        out = self.conv2(out)
        return out + x if self.use_shortcut else out


class MobileNetV3(HybridBlock):
    def __init__(self, size: str = "large", classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        if size not in _CONFIGS:
            raise ValueError(f"MobileNetV3 size must be 'large' or 'small', got {size!r}")
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(*conv_bn(16, 3, 2, act="hard_swish"))
            in_ch = 16
            for kernel, exp, out, se, act, stride in _CONFIGS[size]:
                self.features.add(_ResUnit(in_ch, kernel, exp, out, se, act, stride))
                in_ch = out
            self.features.add(*conv_bn(_LAST_CONV[size], 1, act="hard_swish"))
            self.features.add(nn.GlobalAvgPool2D())
            self.features.add(nn.Conv2D(1280, 1, use_bias=False), activation("hard_swish"))
            self.features.add(nn.Dropout(dropout))
            self.output = nn.HybridSequential(prefix="output_")
            self.output.add(nn.Conv2D(classes, 1), nn.Flatten())

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.output(self.features(x))


def mobilenet_v3(size: str = "large", classes: int = 1000) -> MobileNetV3:
    return MobileNetV3(size, classes)
