"""Xception-65 and -71 (Chollet 2017, as modified for DeepLabV3+ by Chen et al. 2018): a
3x3 stem, then residual blocks of depthwise-separable convolutions (3x3 depthwise,
BatchNorm, 1x1 pointwise, each followed by a BatchNorm), strided by a separable convolution
rather than by pooling; an exit of three separable convolutions before the global pool.

Attribute tree as GluonCV's (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``block1``,
``block2``, ``block3``, ``midflow``, ``block20``, ``conv3..5``/``bn3..5``, ``fc``; a block is
``rep`` [+ ``skip``, ``skipbn``], a separable convolution ``conv1``, ``bn``, ``pointwise``) so
that its ``.params`` files load unchanged. GluonCV pads separable convolutions explicitly;
at output stride 32 (dilation 1) that equals the convolution's own padding of 1.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

# (in, out, separable convs, stride, starts with ReLU, widens first, extra conv at the end)
_ENTRY_65 = ((128, 256, 2, 2, False, True, False),)
_ENTRY_71 = (
    (128, 256, 2, 1, False, True, False),
    (256, 256, 2, 2, False, True, False),
    (256, 728, 2, 2, False, True, False),
)


class _SeparableConv(HybridBlock):
    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        with self.name_scope():
            depthwise = {"groups": in_channels, "in_channels": in_channels}
            self.conv1 = nn.Conv2D(in_channels, 3, stride, 1, use_bias=False, **depthwise)
            self.bn = nn.BatchNorm(in_channels=in_channels)
            self.pointwise = nn.Conv2D(channels, 1, use_bias=False, in_channels=in_channels)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return self.pointwise(self.bn(self.conv1(x)))


class _Block(HybridBlock):
    """``reps`` [ReLU,] separable conv, BatchNorm steps (widening to ``out`` at the first,
    or at the last when not ``grow_first``), one more strided (or, ``is_last``, unstrided)
    one; plus the input, projected by a strided 1x1 conv + BatchNorm when the shape changes."""

    def __init__(
        self,
        in_channels: int,
        out: int,
        reps: int,
        stride: int,
        start_with_relu: bool,
        grow_first: bool,
        is_last: bool,
    ):
        super().__init__()
        widths = [in_channels] + [out if grow_first else in_channels] * (reps - 1) + [out]
        steps = list(zip(widths[:-1], widths[1:], strict=True))
        # as GluonCV's: without start_with_relu, the steps before the widening one have none
        relus = [start_with_relu] + [True] * (reps - 1)
        if not grow_first:
            relus = [start_with_relu] * (reps - 1) + [True]
        if stride != 1 or is_last:
            steps.append((out, out))
            relus.append(True)
        with self.name_scope():
            if out != in_channels or stride != 1:
                self.skip = nn.Conv2D(out, 1, stride, use_bias=False, in_channels=in_channels)
                self.skipbn = nn.BatchNorm(in_channels=out)
            else:
                self.skip = None
            self.rep = nn.HybridSequential()
            for i, ((c_in, c), relu) in enumerate(zip(steps, relus, strict=True)):
                if relu:
                    self.rep.add(nn.Activation("relu"))
                last_strided = i == len(steps) - 1 and stride != 1
                self.rep.add(_SeparableConv(c_in, c, stride if last_strided else 1))
                self.rep.add(nn.BatchNorm(in_channels=c))

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        shortcut = self.skipbn(self.skip(x)) if self.skip is not None else x
        return self.rep(x) + shortcut


class Xception(HybridBlock):
    def __init__(self, depth: int, classes: int = 1000):
        super().__init__()
        if depth not in (65, 71):
            raise ValueError(f"Xception depth must be 65 or 71, got {depth}")
        entry = _ENTRY_65 if depth == 65 else _ENTRY_71
        with self.name_scope():
            self.conv1 = nn.Conv2D(32, 3, 2, 1, use_bias=False, in_channels=3)
            self.bn1 = nn.BatchNorm(in_channels=32)
            self.conv2 = nn.Conv2D(64, 3, 1, 1, use_bias=False, in_channels=32)
            self.bn2 = nn.BatchNorm(in_channels=64)
            self.block1 = _Block(64, 128, 2, 2, False, True, False)
            if depth == 65:
                self.block2 = _Block(*entry[0])
            else:
                self.block2 = nn.HybridSequential()
                self.block2.add(*(_Block(*spec) for spec in entry))
            c = entry[-1][1]
            self.block3 = _Block(c, 728, 2, 2, True, True, True)
            self.midflow = nn.HybridSequential()
            self.midflow.add(*(_Block(728, 728, 3, 1, True, True, False) for _ in range(16)))
            self.block20 = _Block(728, 1024, 2, 2, True, False, True)
            self.conv3 = _SeparableConv(1024, 1536)
            self.bn3 = nn.BatchNorm(in_channels=1536)
            self.conv4 = _SeparableConv(1536, 1536)
            self.bn4 = nn.BatchNorm(in_channels=1536)
            self.conv5 = _SeparableConv(1536, 2048)
            self.bn5 = nn.BatchNorm(in_channels=2048)
            self.fc = nn.Dense(classes, in_units=2048)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        def relu(y):
            return F.Activation(y, act_type="relu")

        x = relu(self.bn2(self.conv2(relu(self.bn1(self.conv1(x))))))
        x = self.block2(relu(self.block1(x)))
        x = relu(self.block20(self.midflow(self.block3(x))))
        for conv, bn in ((self.conv3, self.bn3), (self.conv4, self.bn4), (self.conv5, self.bn5)):
            x = relu(bn(conv(x)))
        return self.fc(F.flatten(F.Pooling(x, kernel=(1, 1), pool_type="avg", global_pool=True)))


def xception(depth: int, classes: int = 1000) -> Xception:
    return Xception(depth, classes)
