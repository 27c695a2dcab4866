"""SENet-154 (Hu et al. 2018): 64x4d SE-ResNeXt units on a 3-conv stem, GluonCV layout.

Differs from the SE-ResNeXts of zoo/resnext.py in its units (the first 1x1 conv half as
wide as the grouped conv, the gate reduced to a quarter of the unit's width, a 3x3
strided projection from stage 2 on) and its stem (64, 64, 128 wide, ceil-mode max pool).
``senet_154e`` projects through an average pool and a 1x1 conv instead. Attribute tree:
``features`` (stem layers, stage1..4, global pool, dropout) and ``output``, as GluonCV's.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from . import layers
from .squeeze_excite import excite, gate_layers

_BLOCKS = (3, 8, 36, 3)  # SENet-154: ResNeXt-152's stage depths


class _SEUnit(HybridBlock):
    """relu(gate(body(x)) * body(x) + shortcut(x)); ``body`` and ``se`` as GluonCV's."""

    def __init__(
        self, channels: int, stride: int, project: int, avg_down: bool, cardinality: int = 64
    ):
        super().__init__()
        grouped = cardinality * (channels * 4 // 64)  # bottleneck width 4 per group
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(*layers.conv_bn(grouped // 2, 1))
            self.body.add(*layers.conv_bn(grouped, 3, stride, groups=cardinality))
            self.body.add(*layers.conv_bn(channels * 4, 1, act=None))
            self.se = gate_layers(channels * 4, channels // 4, dense=False)
            if project:  # 0: identity shortcut, else the projection's kernel size
                self.downsample = nn.HybridSequential(prefix="")
                if avg_down:
                    self.downsample.add(*layers.projection(channels * 4, stride, True))
                else:
                    self.downsample.add(
                        nn.Conv2D(channels * 4, project, stride, project // 2, use_bias=False),
                        nn.BatchNorm(),
                    )
            else:
                self.downsample = None

    def hybrid_forward(self, F, x):  # noqa: N803
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.Activation(excite(F, self.body(x), self.se) + shortcut, act_type="relu")


class SENet(HybridBlock):
    """SENet-154; ``avg_down``: average-pool projections from stage 2 on (senet_154e)."""

    def __init__(self, classes: int = 1000, avg_down: bool = False):
        super().__init__()
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(*layers.conv_bn(64, 3, 2), *layers.conv_bn(64, 3))
            self.features.add(*layers.conv_bn(128, 3), nn.MaxPool2D(3, 2, ceil_mode=True))
            channels = 64
            for stage, count in enumerate(_BLOCKS):
                stride = 1 if stage == 0 else 2
                layer = nn.HybridSequential(prefix=f"stage{stage + 1}_")
                with layer.name_scope():
                    # stage 1 projects with a 1x1 conv, later ones with a strided 3x3
                    first = _SEUnit(
                        channels, stride, 1 if stage == 0 else 3, avg_down and stage > 0
                    )
                    layer.add(first)
                    for _ in range(count - 1):
                        layer.add(_SEUnit(channels, 1, 0, False))
                self.features.add(layer)
                channels *= 2
            self.features.add(nn.GlobalAvgPool2D(), nn.Dropout(0.2))
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.output(self.features(x))


def senet_154(classes: int = 1000, avg_down: bool = False) -> SENet:
    return SENet(classes, avg_down)
