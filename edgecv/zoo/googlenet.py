"""GoogLeNet (Szegedy et al. 2014) with BatchNorm after every convolution (Ioffe & Szegedy
2015), as GluonCV trains it: nine inception modules of four parallel paths (1x1; 1x1 ->
3x3; 1x1 -> 3x3; 3x3 max-pool -> 1x1) concatenated along channels.

Attribute tree as GluonCV's (``conv1..3``, ``inception3a..5b`` whose paths are indexed
``HybridSequential``s of conv-BN-ReLU units, the classifier reachable both as ``output`` and
as ``head.2``) so that its ``.params`` files load unchanged. The auxiliary classifiers are
training-only and not built. GluonCV averages the last 7x7 map with a fixed 7x7 pool, which
fits only a 224x224 input; a global average pool is the same there and lets the network run
at other sizes.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn
from mxnet.gluon.contrib.nn import HybridConcurrent

# module -> (1x1, (3x3 reduce, 3x3), (second 3x3 reduce, its 3x3), pool projection)
_MODULES = {
    "3a": (64, (96, 128), (16, 32), 32),
    "3b": (128, (128, 192), (32, 96), 64),
    "4a": (192, (96, 208), (16, 48), 64),
    "4b": (160, (112, 224), (24, 64), 64),
    "4c": (128, (128, 256), (24, 64), 64),
    "4d": (112, (144, 288), (32, 64), 64),
    "4e": (256, (160, 320), (32, 128), 128),
    "5a": (256, (160, 320), (32, 128), 128),
    "5b": (384, (192, 384), (48, 128), 128),
}


def conv_unit(channels: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.HybridSequential:
    """Conv (no bias) + BatchNorm (epsilon 1e-3) + ReLU, the unit of the Inception family."""
    out = nn.HybridSequential(prefix="")
    out.add(nn.Conv2D(channels, kernel, stride, padding, use_bias=False))
    out.add(nn.BatchNorm(epsilon=0.001), nn.Activation("relu"))
    return out


def _inception(one: int, three: tuple[int, int], three_b: tuple[int, int], pool: int):
    paths = HybridConcurrent(axis=1, prefix="")
    for layers in (
        [conv_unit(one, 1)],
        [conv_unit(three[0], 1), conv_unit(three[1], 3, padding=1)],
        [conv_unit(three_b[0], 1), conv_unit(three_b[1], 3, padding=1)],
        [nn.MaxPool2D(3, 1, 1), conv_unit(pool, 1)],
    ):
        path = nn.HybridSequential(prefix="")
        path.add(*layers)
        paths.add(path)
    return paths


class GoogLeNet(HybridBlock):
    """GoogLeNet (Inception v1) with BatchNorm."""

    def __init__(self, classes: int = 1000, dropout: float = 0.4):
        super().__init__()
        with self.name_scope():
            self.conv1 = conv_unit(64, 7, 2, 3)
            self.maxpool1 = nn.MaxPool2D(3, 2, ceil_mode=True)
            self.conv2 = conv_unit(64, 1)
            self.conv3 = conv_unit(192, 3, padding=1)
            self.maxpool2 = nn.MaxPool2D(3, 2, ceil_mode=True)
            for name, widths in _MODULES.items():
                setattr(self, f"inception{name}", _inception(*widths))
            self.maxpool3 = nn.MaxPool2D(3, 2, ceil_mode=True)
            self.maxpool4 = nn.MaxPool2D(2, 2)
            self.head = nn.HybridSequential(prefix="")
            self.avgpool = nn.GlobalAvgPool2D()
            self.dropout = nn.Dropout(dropout)
            self.output = nn.Dense(classes, in_units=1024)
            self.head.add(self.avgpool, self.dropout, self.output)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        for name in _MODULES:
            x = getattr(self, f"inception{name}")(x)
            if name == "3b":
                x = self.maxpool3(x)
            elif name == "4e":
                x = self.maxpool4(x)
        return self.head(x)


def googlenet(classes: int = 1000) -> GoogLeNet:
    return GoogLeNet(classes)
