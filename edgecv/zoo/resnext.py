"""ResNeXt (Xie et al. 2017) and SE-ResNeXt (Hu et al. 2018): ResNet bottlenecks whose
3x3 convolution is split into ``cardinality`` groups of ``width`` channels (at the first
stage; doubling per stage), optionally gated per channel by a squeeze-and-excitation branch.
The "e" variants take ResNet v1d's deep stem and average-pool shortcuts (its code: layers.py).

Attribute tree as GluonCV's (``features`` = stem, ``stage<i>_`` layers by index, global
pool; ``output``; a block is ``body`` [+ ``se``] [+ ``downsample``]) so that its
``.params`` files load unchanged.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from . import layers
from .squeeze_excite import excite, gate_layers

_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
_EXPANSION = 4  # a block's output channels per unit of its stage's base width


class _Block(HybridBlock):
    def __init__(
        self,
        base: int,
        cardinality: int,
        width: int,
        stride: int,
        downsample: bool,
        squeeze_excite: bool,
        avg_down: bool,
    ):
        super().__init__()
        group_width = cardinality * (base * width // 64)
        out = base * _EXPANSION
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(nn.Conv2D(group_width, 1, use_bias=False), nn.BatchNorm())
            self.body.add(nn.Activation("relu"))
            self.body.add(
                nn.Conv2D(group_width, 3, stride, 1, groups=cardinality, use_bias=False),
                nn.BatchNorm(),
                nn.Activation("relu"),
            )
            self.body.add(nn.Conv2D(out, 1, use_bias=False), nn.BatchNorm())
            self.se = gate_layers(out, base // 4, dense=False) if squeeze_excite else None
            if downsample:
                self.downsample = nn.HybridSequential(prefix="")
                self.downsample.add(*layers.projection(out, stride, avg_down and stride != 1))
            else:
                self.downsample = None

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        out = self.body(x)
        if self.se is not None:
            out = excite(F, out, self.se)
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.Activation(out + shortcut, act_type="relu")


class ResNeXt(HybridBlock):
    """ResNeXt-``depth`` (50, 101) with ``cardinality`` x ``width`` grouped convolutions."""

    def __init__(
        self,
        depth: int,
        cardinality: int,
        width: int,
        classes: int = 1000,
        squeeze_excite: bool = False,
        deep_stem: bool = False,
        avg_down: bool = False,
    ):
        super().__init__()
        if depth not in _BLOCKS:
            raise ValueError(f"ResNeXt depth must be one of {sorted(_BLOCKS)}, got {depth}")
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            if deep_stem:
                self.features.add(*layers.deep_stem(64))
            else:
                self.features.add(nn.Conv2D(64, 7, 2, 3, use_bias=False))
            self.features.add(nn.BatchNorm(), nn.Activation("relu"), nn.MaxPool2D(3, 2, 1))
            for stage, count in enumerate(_BLOCKS[depth]):
                base, stride = 64 * 2**stage, 1 if stage == 0 else 2
                layer = nn.HybridSequential(prefix=f"stage{stage + 1}_")
                with layer.name_scope():
                    for i in range(count):
                        layer.add(
                            _Block(
                                base,
                                cardinality,
                                width,
                                stride if i == 0 else 1,
                                i == 0,
                                squeeze_excite,
                                avg_down and stage > 0,
                            )
                        )
                self.features.add(layer)
            self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.Dense(classes, in_units=512 * _EXPANSION)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return self.output(self.features(x))


def resnext(
    depth: int, cardinality: int, width: int, classes: int = 1000, **kwargs: bool
) -> ResNeXt:
    return ResNeXt(depth, cardinality, width, classes, **kwargs)
