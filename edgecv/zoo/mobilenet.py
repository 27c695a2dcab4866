"""MobileNet v1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018), GluonCV layout."""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from .layers import conv_bn

# MobileNet v1: (depthwise channels, pointwise channels, stride) at width 1.0
_V1_UNITS = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    *((512, 512, 1),) * 5,
    (512, 1024, 2),
    (1024, 1024, 1),
)

# MobileNetV2 inverted residuals: (expansion, out channels, repeats, first stride)
_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
              (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


class MobileNetV1(HybridBlock):
    def __init__(self, multiplier: float = 1.0, classes: int = 1000):
        super().__init__()
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(*conv_bn(int(32 * multiplier), 3, 2))
            for dw, pw, stride in _V1_UNITS:
                dw_ch = int(dw * multiplier)
                self.features.add(*conv_bn(dw_ch, 3, stride, groups=dw_ch))
                self.features.add(*conv_bn(int(pw * multiplier), 1))
            self.features.add(nn.GlobalAvgPool2D(), nn.Flatten())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.output(self.features(x))


class _InvertedResidual(HybridBlock):
    """Expand (1x1) → depthwise 3x3 → linear project, with identity shortcut when shapes match."""

    def __init__(self, in_channels: int, channels: int, expansion: int, stride: int):
        super().__init__()
        self.use_shortcut = stride == 1 and in_channels == channels
        hidden = in_channels * expansion
        with self.name_scope():
            self.out = nn.HybridSequential()
            if expansion != 1:
                self.out.add(*conv_bn(hidden, 1, act="relu6"))
            self.out.add(*conv_bn(hidden, 3, stride, groups=hidden, act="relu6"))
            self.out.add(*conv_bn(channels, 1, act=None))

    def hybrid_forward(self, F, x):  # noqa: N803
        out = self.out(x)
        return out + x if self.use_shortcut else out


class MobileNetV2(HybridBlock):
    def __init__(self, multiplier: float = 1.0, classes: int = 1000):
        super().__init__()
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            in_channels = int(32 * multiplier)
            self.features.add(*conv_bn(in_channels, 3, 2, act="relu6"))
            for expansion, channels, repeats, first_stride in _V2_STAGES:
                out_channels = int(channels * multiplier)
                for i in range(repeats):
                    stride = first_stride if i == 0 else 1
                    self.features.add(
                        _InvertedResidual(in_channels, out_channels, expansion, stride)
                    )
                    in_channels = out_channels
            last = int(1280 * multiplier) if multiplier > 1.0 else 1280
            self.features.add(*conv_bn(last, 1, act="relu6"))
            self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.HybridSequential(prefix="output_")
            self.output.add(nn.Conv2D(classes, 1, use_bias=False), nn.Flatten())

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.output(self.features(x))


def mobilenet_v1(multiplier: float = 1.0, classes: int = 1000) -> MobileNetV1:
    return MobileNetV1(multiplier, classes)


def mobilenet_v2(multiplier: float = 1.0, classes: int = 1000) -> MobileNetV2:
    return MobileNetV2(multiplier, classes)
