"""SqueezeNet 1.0 (Iandola et al. 2016) and 1.1 (the official repository's cheaper stem):
"fire" modules, a 1x1 squeeze convolution feeding parallel 1x1 and 3x3 expand convolutions.

Attribute tree as GluonCV's (``features`` and ``output``, children by index; a fire module
is ``[squeeze, [expand1x1, expand3x3]]``, each conv followed by its ReLU) so that its
``.params`` files load unchanged. GluonCV averages the classifier's 13x13 map with a fixed
13x13 pool, which only fits a 224x224 input; a global average pool is the same there and
lets the network run at other sizes.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn
from mxnet.gluon.contrib.nn import HybridConcurrent

# per version: stem (channels, kernel), then the body: "pool" or a fire module's
# (squeeze, expand) channels (each expand path has `expand` channels)
_LAYOUT = {
    "1.0": (
        (96, 7),
        ("pool", (16, 64), (16, 64), (32, 128), "pool", (32, 128), (48, 192), (48, 192))
        + ((64, 256), "pool", (64, 256)),
    ),
    "1.1": (
        (64, 3),
        ("pool", (16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192))
        + ((48, 192), (64, 256), (64, 256)),
    ),
}


def _conv_relu(channels: int, kernel: int, padding: int = 0) -> nn.HybridSequential:
    out = nn.HybridSequential(prefix="")
    out.add(nn.Conv2D(channels, kernel, padding=padding), nn.Activation("relu"))
    return out


def _fire(squeeze: int, expand: int) -> nn.HybridSequential:
    expand_paths = HybridConcurrent(axis=1, prefix="")
    expand_paths.add(_conv_relu(expand, 1), _conv_relu(expand, 3, padding=1))
    out = nn.HybridSequential(prefix="")
    out.add(_conv_relu(squeeze, 1), expand_paths)
    return out


class SqueezeNet(HybridBlock):
    """SqueezeNet ``version`` "1.0" or "1.1"."""

    def __init__(self, version: str, classes: int = 1000):
        super().__init__()
        if version not in _LAYOUT:
            raise ValueError(
                f"SqueezeNet version must be one of {sorted(_LAYOUT)}, got {version!r}"
            )
        (stem_channels, stem_kernel), body = _LAYOUT[version]
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(nn.Conv2D(stem_channels, stem_kernel, 2), nn.Activation("relu"))
            for item in body:
                if item == "pool":
                    self.features.add(nn.MaxPool2D(3, 2, ceil_mode=True))
                else:
                    self.features.add(_fire(*item))
            self.features.add(nn.Dropout(0.5))
            self.output = nn.HybridSequential(prefix="")
            self.output.add(nn.Conv2D(classes, 1), nn.Activation("relu"))
            self.output.add(nn.GlobalAvgPool2D(), nn.Flatten())

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return self.output(self.features(x))


def squeezenet(version: str, classes: int = 1000) -> SqueezeNet:
    return SqueezeNet(version, classes)
