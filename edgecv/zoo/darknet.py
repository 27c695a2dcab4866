"""Darknet-53 (Redmon & Farhadi, YOLOv3 2018), GluonCV layout (``features`` + ``output``)."""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

_LAYERS = (1, 2, 8, 8, 4)
_CHANNELS = (64, 128, 256, 512, 1024)


def conv_bn_leaky(channels: int, kernel: int, stride: int = 1) -> nn.HybridSequential:
    """Conv (no bias) → BatchNorm → LeakyReLU(0.1), the Darknet/YOLOv3 unit."""
    cell = nn.HybridSequential(prefix="")
    cell.add(nn.Conv2D(channels, kernel, stride, kernel // 2, use_bias=False))
    cell.add(nn.BatchNorm(epsilon=1e-5, momentum=0.9))
    cell.add(nn.LeakyReLU(0.1))
    return cell


class _DarknetBlock(HybridBlock):
    """1x1 squeeze to half the channels, 3x3 back, plus identity."""

    def __init__(self, channels: int):
        super().__init__()
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(conv_bn_leaky(channels // 2, 1), conv_bn_leaky(channels, 3))

    def hybrid_forward(self, F, x):  # noqa: N803
        return x + self.body(x)


class DarknetV3(HybridBlock):
    def __init__(self, classes: int = 1000):
        super().__init__()
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(conv_bn_leaky(32, 3))
            for count, channels in zip(_LAYERS, _CHANNELS, strict=True):
                self.features.add(conv_bn_leaky(channels, 3, 2))
                for _ in range(count):
                    self.features.add(_DarknetBlock(channels))
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):  # noqa: N803
        x = F.Pooling(self.features(x), kernel=(7, 7), global_pool=True, pool_type="avg")
        return self.output(x)


def darknet53(classes: int = 1000) -> DarknetV3:
    return DarknetV3(classes)
