"""Inception v3 (Szegedy et al. 2015), 299x299 input: a stem without padding, then three
35x35 modules (A), a grid reduction (B), four 17x17 modules with factorised 7x7
convolutions (C), a second reduction (D) and two 8x8 modules with split 1x3/3x1 paths (E).

Attribute tree as GluonCV's (``features`` by index; a module is a concatenation of paths,
each an indexed ``HybridSequential`` of conv-BN(eps 1e-3)-ReLU units after an optional
pool; ``output``) so that its ``.params`` files load unchanged. The auxiliary classifier is
training-only and not built. GluonCV averages the 8x8 map with a fixed 8x8 pool; a global
average pool is the same at 299x299 and lets the network run at other sizes (75x75 and up).
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn
from mxnet.gluon.contrib.nn import HybridConcurrent

from .googlenet import conv_unit

# a conv unit: (channels, kernel, stride, padding); kernels and paddings may be (h, w)
_K17 = ((1, 7), (0, 3))  # 1x7 with its padding
_K71 = ((7, 1), (3, 0))


def _unit(channels: int, kernel=1, stride: int = 1, padding=0) -> nn.HybridSequential:
    return conv_unit(channels, kernel, stride, padding)


def _path(pool: str | None, *units: nn.HybridBlock) -> nn.HybridSequential:
    out = nn.HybridSequential(prefix="")
    if pool == "avg":
        out.add(nn.AvgPool2D(3, 1, 1))
    elif pool == "max":
        out.add(nn.MaxPool2D(3, 2))
    out.add(*units)
    return out


def _concat(*paths: nn.HybridBlock) -> HybridConcurrent:
    out = HybridConcurrent(axis=1, prefix="")
    out.add(*paths)
    return out


def _module_a(pool_channels: int) -> HybridConcurrent:
    return _concat(
        _path(None, _unit(64)),
        _path(None, _unit(48), _unit(64, 5, padding=2)),
        _path(None, _unit(64), _unit(96, 3, padding=1), _unit(96, 3, padding=1)),
        _path("avg", _unit(pool_channels)),
    )


def _module_b() -> HybridConcurrent:
    return _concat(
        _path(None, _unit(384, 3, 2)),
        _path(None, _unit(64), _unit(96, 3, padding=1), _unit(96, 3, 2)),
        _path("max"),
    )


def _module_c(mid: int) -> HybridConcurrent:
    return _concat(
        _path(None, _unit(192)),
        _path(None, _unit(mid), _unit(mid, _K17[0], 1, _K17[1]), _unit(192, _K71[0], 1, _K71[1])),
        _path(
            None,
            _unit(mid),
            _unit(mid, _K71[0], 1, _K71[1]),
            _unit(mid, _K17[0], 1, _K17[1]),
            _unit(mid, _K71[0], 1, _K71[1]),
            _unit(192, _K17[0], 1, _K17[1]),
        ),
        _path("avg", _unit(192)),
    )


def _module_d() -> HybridConcurrent:
    return _concat(
        _path(None, _unit(192), _unit(320, 3, 2)),
        _path(
            None,
            _unit(192),
            _unit(192, _K17[0], 1, _K17[1]),
            _unit(192, _K71[0], 1, _K71[1]),
            _unit(192, 3, 2),
        ),
        _path("max"),
    )


def _split_1x3_3x1() -> HybridConcurrent:
    return _concat(
        _path(None, _unit(384, (1, 3), 1, (0, 1))), _path(None, _unit(384, (3, 1), 1, (1, 0)))
    )


def _module_e() -> HybridConcurrent:
    three = nn.HybridSequential(prefix="")
    three.add(_path(None, _unit(384)), _split_1x3_3x1())
    double = nn.HybridSequential(prefix="")
    double.add(_path(None, _unit(448), _unit(384, 3, padding=1)), _split_1x3_3x1())
    return _concat(_path(None, _unit(320)), three, double, _path("avg", _unit(192)))


class InceptionV3(HybridBlock):
    """Inception v3."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(_unit(32, 3, 2), _unit(32, 3), _unit(64, 3, padding=1))
            self.features.add(nn.MaxPool2D(3, 2), _unit(80), _unit(192, 3), nn.MaxPool2D(3, 2))
            self.features.add(_module_a(32), _module_a(64), _module_a(64), _module_b())
            self.features.add(*(_module_c(mid) for mid in (128, 160, 160, 192)))
            self.features.add(_module_d(), _module_e(), _module_e())
            self.features.add(nn.GlobalAvgPool2D(), nn.Dropout(0.5))
            self.output = nn.Dense(classes, in_units=2048)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return self.output(self.features(x))


def inception_v3(classes: int = 1000) -> InceptionV3:
    return InceptionV3(classes)
