"""DenseNet-121/161/169/201 (Huang et al. 2017): dense blocks whose layers each append
``growth`` new channels (BN-ReLU-1x1 conv to ``4 * growth``, BN-ReLU-3x3 conv) to their
input, with halving 1x1 + 2x2 average-pool transitions between the blocks.

Attribute tree as GluonCV's (``features``: stem, then ``stage<i>_`` blocks and transitions
by index; a dense layer is a concatenation of the identity and its new features) so that
its ``.params`` files load unchanged. GluonCV ends with a fixed 7x7 average pool, which
only fits a 224x224 input; a global average pool is the same there and lets the network
run at other sizes.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn
from mxnet.gluon.contrib.nn import HybridConcurrent, Identity

# depth -> (stem channels, growth rate, layers per dense block)
_LAYOUT = {
    121: (64, 32, (6, 12, 24, 16)),
    161: (96, 48, (6, 12, 36, 24)),
    169: (64, 32, (6, 12, 32, 32)),
    201: (64, 32, (6, 12, 48, 32)),
}
_BOTTLENECK = 4  # the 1x1 conv's width, in multiples of the growth rate


def _bn_relu_conv(seq: nn.HybridSequential, channels: int, kernel: int) -> None:
    seq.add(nn.BatchNorm(), nn.Activation("relu"))
    seq.add(nn.Conv2D(channels, kernel, padding=kernel // 2, use_bias=False))


def _dense_layer(growth: int) -> HybridConcurrent:
    new = nn.HybridSequential(prefix="")
    _bn_relu_conv(new, _BOTTLENECK * growth, 1)
    _bn_relu_conv(new, growth, 3)
    out = HybridConcurrent(axis=1, prefix="")
    out.add(Identity(), new)
    return out


class DenseNet(HybridBlock):
    """DenseNet-``depth`` (121, 161, 169, 201)."""

    def __init__(self, depth: int, classes: int = 1000):
        super().__init__()
        if depth not in _LAYOUT:
            raise ValueError(f"DenseNet depth must be one of {sorted(_LAYOUT)}, got {depth}")
        stem, growth, blocks = _LAYOUT[depth]
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(nn.Conv2D(stem, 7, 2, 3, use_bias=False), nn.BatchNorm())
            self.features.add(nn.Activation("relu"), nn.MaxPool2D(3, 2, 1))
            channels = stem
            for index, count in enumerate(blocks):
                block = nn.HybridSequential(prefix=f"stage{index + 1}_")
                with block.name_scope():
                    for _ in range(count):
                        block.add(_dense_layer(growth))
                self.features.add(block)
                channels += count * growth
                if index < len(blocks) - 1:
                    channels //= 2
                    transition = nn.HybridSequential(prefix="")
                    _bn_relu_conv(transition, channels, 1)
                    transition.add(nn.AvgPool2D(2, 2))
                    self.features.add(transition)
            self.features.add(nn.BatchNorm(), nn.Activation("relu"))
            self.features.add(nn.GlobalAvgPool2D(), nn.Flatten())
            self.output = nn.Dense(classes, in_units=channels)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return self.output(self.features(x))


def densenet(depth: int, classes: int = 1000) -> DenseNet:
    return DenseNet(depth, classes)
