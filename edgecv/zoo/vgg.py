"""Plain convolution stacks: AlexNet ("One weird trick", Krizhevsky 2014) and VGG
(Simonyan & Zisserman 2014), with or without BatchNorm.

Attribute trees follow GluonCV's (everything up to the last hidden layer in ``features``,
children by index, the classifier in ``output``) so that its ``.params`` files load
unchanged. The fully connected layers infer their input width, so the networks run at any
input size that survives the pooling; GluonCV's weights need the 224x224 they were trained at.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

# depth -> convolutions per stage; the stages have 64, 128, 256, 512, 512 channels
_VGG_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_VGG_WIDTHS = (64, 128, 256, 512, 512)
# AlexNet's convolutions: (channels, kernel, stride, padding, max-pool after)
_ALEXNET_CONVS = (
    (64, 11, 4, 2, True),
    (192, 5, 1, 2, True),
    (384, 3, 1, 1, False),
    (256, 3, 1, 1, False),
    (256, 3, 1, 1, True),
)


def _hidden_layers(features: nn.HybridSequential, width: int = 4096) -> None:
    """The two dropout-regularised fully connected layers both networks end with."""
    for _ in range(2):
        features.add(nn.Dense(width, activation="relu"), nn.Dropout(0.5))


class PlainConvNet(HybridBlock):
    """``features`` (convolutions, pooling, hidden dense layers) then ``output``."""

    def __init__(self, features: nn.HybridSequential, classes: int):
        super().__init__()
        with self.name_scope():
            self.features = features
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):  # noqa: N803 (MXNet's signature)
        return self.output(self.features(x))


def alexnet(classes: int = 1000) -> PlainConvNet:
    """AlexNet: five convolutions (ReLU fused), three 3x3/2 max-pools, two 4096 layers."""
    features = nn.HybridSequential(prefix="")
    for channels, kernel, stride, pad, pool in _ALEXNET_CONVS:
        features.add(nn.Conv2D(channels, kernel, stride, pad, activation="relu"))
        if pool:
            features.add(nn.MaxPool2D(3, 2))
    features.add(nn.Flatten())
    _hidden_layers(features)
    return PlainConvNet(features, classes)


def vgg(depth: int, classes: int = 1000, batch_norm: bool = False) -> PlainConvNet:
    """VGG-``depth`` (11, 13, 16, 19): 3x3 convolutions (+ BatchNorm) + ReLU, a 2x2 max-pool
    after each of the five stages, two 4096 layers."""
    if depth not in _VGG_STAGES:
        raise ValueError(f"VGG depth must be one of {sorted(_VGG_STAGES)}, got {depth}")
    features = nn.HybridSequential(prefix="")
    for count, width in zip(_VGG_STAGES[depth], _VGG_WIDTHS, strict=True):
        for _ in range(count):
            features.add(nn.Conv2D(width, 3, 1, 1))
            if batch_norm:
                features.add(nn.BatchNorm())
            features.add(nn.Activation("relu"))
        features.add(nn.MaxPool2D(2, 2))
    _hidden_layers(features)
    return PlainConvNet(features, classes)
