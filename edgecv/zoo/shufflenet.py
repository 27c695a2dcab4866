"""ShuffleNet v1 (Zhang et al. 2018; 3 groups) and v2 (Ma et al. 2018; 1.0x): units of
grouped or depthwise convolutions whose channels are interleaved between groups by a
channel shuffle.

Attribute tree as GluonCV's (``features`` = stem, max-pool, three stages of units, [1x1
conv,] global pool; ``output``; a conv "cell" is a HybridSequential of conv, BatchNorm
[, ReLU]; v1 units keep GluonCV's ``conv_beforshuffle``/``conv_aftershuffle`` names, v2 units
``branch1_conv``/``branch2_conv``) so that its ``.params`` files load unchanged. As there:
v1's stem is a plain biased conv, every v1 unit's last 1x1 conv is grouped (the first
unit's first one is not), and its downsampling units concatenate a 3x3 average pool of
their input.

The shuffle reshapes with the channel count known when the unit is built, never with
MXNet's split-axis reshape code (-4), which the ONNX exporter rejects.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

_REPEATS = (3, 7, 3)  # units per stage after its first (downsampling) one
_V1_WIDTHS = (24, 240, 480, 960)  # stem, stages 2-4 (3 groups)
_V2_WIDTHS = (24, 116, 232, 464)  # 1.0x


def _cell(
    channels: int,
    kernel: int = 1,
    stride: int = 1,
    groups: int = 1,
    relu: bool = True,
    bias: bool = True,
) -> nn.HybridSequential:
    cell = nn.HybridSequential(prefix="")
    cell.add(nn.Conv2D(channels, kernel, stride, kernel // 2, groups=groups, use_bias=bias))
    cell.add(nn.BatchNorm())
    if relu:
        cell.add(nn.Activation("relu"))
    return cell


def channel_shuffle(F, x, groups: int, channels: int):  # noqa: N803 (MXNet's F)
    """(N, C, H, W) with channels read as ``groups`` x C/groups, written transposed."""
    y = F.reshape(x, shape=(0, groups, channels // groups, -1))
    return F.reshape_like(F.transpose(y, axes=(0, 2, 1, 3)), x)


class _UnitV1(HybridBlock):
    """1x1 group conv, shuffle, 3x3 depthwise (stride 2 when downsampling), 1x1 group conv;
    added to the input, or concatenated to its average pool when downsampling; ReLU."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, grouped: bool):
        super().__init__()
        self.downsample, self.grouped = downsample, grouped
        branch = out_channels - in_channels if downsample else out_channels
        self.mid = branch // 4
        with self.name_scope():
            self.conv_beforshuffle = nn.HybridSequential()
            self.conv_beforshuffle.add(_cell(self.mid, groups=3 if grouped else 1))
            self.conv_aftershuffle = nn.HybridSequential()
            self.conv_aftershuffle.add(
                _cell(self.mid, 3, 2 if downsample else 1, self.mid, relu=False),
                _cell(branch, groups=3, relu=False),
            )

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        y = self.conv_beforshuffle(x)
        if self.grouped:
            y = channel_shuffle(F, y, 3, self.mid)
        y = self.conv_aftershuffle(y)
        if self.downsample:
            pooled = F.Pooling(x, kernel=(3, 3), pool_type="avg", stride=(2, 2), pad=(1, 1))
            return F.Activation(F.concat(pooled, y, dim=1), act_type="relu")
        return F.Activation(x + y, act_type="relu")


class _UnitV2(HybridBlock):
    """Half the channels through 1x1, 3x3 depthwise, 1x1 (the other half as is), or, when
    downsampling, both halves computed from the whole input at stride 2; concatenated and
    shuffled between the halves."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool):
        super().__init__()
        self.downsample, self.in_channels, self.out_channels = (
            downsample,
            in_channels,
            out_channels,
        )
        half, stride = out_channels // 2, 2 if downsample else 1
        with self.name_scope():
            if downsample:
                self.branch1_conv = nn.HybridSequential()
                self.branch1_conv.add(
                    _cell(in_channels, 3, 2, in_channels, relu=False, bias=False),
                    _cell(half, bias=False),
                )
            self.branch2_conv = nn.HybridSequential()
            self.branch2_conv.add(
                _cell(half, bias=False),
                _cell(half, 3, stride, half, relu=False, bias=False),
                _cell(half, bias=False),
            )

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        if self.downsample:
            kept, branch = self.branch1_conv(x), x
        else:
            half = self.in_channels // 2
            kept = F.slice_axis(x, axis=1, begin=0, end=half)
            branch = F.slice_axis(x, axis=1, begin=half, end=self.in_channels)
        y = F.concat(kept, self.branch2_conv(branch), dim=1)
        return channel_shuffle(F, y, 2, self.out_channels)


class ShuffleNet(HybridBlock):
    def __init__(self, version: int, classes: int = 1000):
        super().__init__()
        if version not in (1, 2):
            raise ValueError(f"ShuffleNet version must be 1 or 2, got {version}")
        widths = _V1_WIDTHS if version == 1 else _V2_WIDTHS
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            if version == 1:
                self.features.add(nn.Conv2D(widths[0], 3, 2, 1))
            else:
                self.features.add(_cell(widths[0], 3, 2, bias=False))
            self.features.add(nn.MaxPool2D(3, 2, 1))
            for stage, repeats in enumerate(_REPEATS):
                c_in, c = widths[stage], widths[stage + 1]
                body = nn.HybridSequential()
                if version == 1:  # the first stage's first unit: no groups on 24 channels
                    body.add(_UnitV1(c_in, c, True, grouped=stage > 0))
                    body.add(*(_UnitV1(c, c, False, True) for _ in range(repeats)))
                else:
                    body.add(_UnitV2(c_in, c, True))
                    body.add(*(_UnitV2(c, c, False) for _ in range(repeats)))
                self.features.add(body)
            if version == 2:
                self.features.add(_cell(1024, bias=False))
            self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return self.output(self.features(x))


def shufflenet(version: int, classes: int = 1000) -> ShuffleNet:
    return ShuffleNet(version, classes)
