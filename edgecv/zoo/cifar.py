"""CIFAR-10 networks (32x32 images, 10 classes): ResNet v1/v2 of 6n+2 layers (He et al.
2016), Wide ResNet d-k (Zagoruyko & Komodakis 2016) and ResNeXt-29 (Xie et al. 2017), made of
the ImageNet families' residual units behind a 3x3 stem without max-pool.

Attribute tree as GluonCV's CIFAR models (``features`` = stem, ``stage1_..3_`` layers by
index, [BatchNorm, ReLU,] global pool [, Flatten]; ``output``), so that its ``.params`` files
load unchanged. Its quirks are kept, trained weights depend on them: ResNet v1's stem has no
ReLU after its BatchNorm; ResNet v2's projection shortcuts take the unit's raw input (Wide
ResNet's, like ImageNet v2's, the pre-activated one); ResNeXt-29 projects at every stage.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

from .resnet import _ResidualV1, _ResidualV2
from .resnext import _EXPANSION, _Block


def _stages(features: nn.HybridSequential, units) -> None:
    """Three stages (stride 1, 2, 2) of ``units(stage, stride) -> [blocks]``."""
    for stage in range(3):
        layer = nn.HybridSequential(prefix=f"stage{stage + 1}_")
        with layer.name_scope():
            layer.add(*units(stage, 1 if stage == 0 else 2))
        features.add(layer)


class CIFARNet(HybridBlock):
    """``features`` then the ``output`` dense layer (every CIFAR family's top level)."""

    def __init__(self, build, channels: int, classes: int):
        super().__init__()
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            build(self.features)
            self.output = nn.Dense(classes, in_units=channels)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return self.output(self.features(x))


def _residual_units(unit, n: int, widths: tuple[int, ...], **kw):
    def units(stage: int, stride: int) -> list[HybridBlock]:
        c_in, c = widths[stage], widths[stage + 1]
        first = unit("basic", c, stride, c != c_in, c_in, **kw)
        return [first] + [unit("basic", c, 1, False, c, **kw) for _ in range(n - 1)]

    return units


def _pre_activation_head(features: nn.HybridSequential) -> None:
    features.add(nn.BatchNorm(), nn.Activation("relu"), nn.GlobalAvgPool2D(), nn.Flatten())


def cifar_resnet(depth: int, version: int, classes: int = 10) -> CIFARNet:
    """ResNet-``depth`` (6n+2: 20, 56, 110) v1 or v2: n basic units per stage, 16/32/64 wide."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 56, 110), got {depth}")
    widths, n = (16, 16, 32, 64), (depth - 2) // 6

    def build(features: nn.HybridSequential) -> None:
        if version == 1:
            features.add(nn.Conv2D(16, 3, 1, 1, use_bias=False), nn.BatchNorm())
            _stages(features, _residual_units(_ResidualV1, n, widths))
            features.add(nn.GlobalAvgPool2D())
        else:
            # input normalisation: fixed gamma/beta, only running statistics
            features.add(nn.BatchNorm(scale=False, center=False))
            features.add(nn.Conv2D(16, 3, 1, 1, use_bias=False))
            _stages(features, _residual_units(_ResidualV2, n, widths, project_raw=True))
            _pre_activation_head(features)

    return CIFARNet(build, widths[-1], classes)


def cifar_wideresnet(depth: int, width: int, classes: int = 10) -> CIFARNet:
    """WRN-``depth``-``width`` (6n+4): n pre-activation basic units per stage, 16/32/64
    times ``width`` wide (GluonCV's, without dropout)."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"Wide ResNet depth must be 6n+4 (16, 28, 40), got {depth}")
    widths, n = (16, 16 * width, 32 * width, 64 * width), (depth - 4) // 6

    def build(features: nn.HybridSequential) -> None:
        features.add(nn.BatchNorm(scale=False, center=False))
        features.add(nn.Conv2D(16, 3, 1, 1, use_bias=False), nn.BatchNorm())
        _stages(features, _residual_units(_ResidualV2, n, widths))
        _pre_activation_head(features)

    return CIFARNet(build, widths[-1], classes)


def cifar_resnext(depth: int, cardinality: int, width: int, classes: int = 10) -> CIFARNet:
    """ResNeXt-``depth`` (9n+2: 29) ``cardinality`` x ``width``d: n grouped bottlenecks per
    stage at base widths 64/128/256, each stage's first one projecting."""
    if depth < 11 or (depth - 2) % 9:
        raise ValueError(f"CIFAR ResNeXt depth must be 9n+2 (29), got {depth}")
    n = (depth - 2) // 9

    def units(stage: int, stride: int) -> list[HybridBlock]:
        base = 64 * 2**stage
        first = _Block(base, cardinality, width, stride, True, False, False)
        return [first] + [
            _Block(base, cardinality, width, 1, False, False, False) for _ in range(n - 1)
        ]

    def build(features: nn.HybridSequential) -> None:
        features.add(nn.Conv2D(64, 3, 1, 1, use_bias=False), nn.BatchNorm())
        features.add(nn.Activation("relu"))
        _stages(features, units)
        features.add(nn.GlobalAvgPool2D())

    return CIFARNet(build, 256 * _EXPANSION, classes)
