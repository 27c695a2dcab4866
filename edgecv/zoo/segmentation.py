"""Semantic segmentation: FCN (Long et al. 2015), PSPNet (Zhao et al. 2017) and DeepLabV3
(Chen et al. 2017) on a dilated ResNet v1s or ResNeSt (output stride 8).

Attribute trees follow GluonCV's (backbone blocks copied onto the model as conv1, bn1,
relu, maxpool, layer1..4; ``head``; ``auxlayer``), so its ``.params`` files load unchanged.
The auxiliary head exists for that reason and for training (``training_outputs = True``
makes the forward return its scores too); inference never uses it.

The forward returns per-pixel class scores at the input resolution (bilinear upsampling
with aligned corners, as GluonCV's ``BilinearResize2D``). Sizes are static, as a compiled
graph needs them: the model is built for an input size (480x480 by default, GluonCV's
crop size) and :meth:`SegmentationModel.prepare_deploy` sets another one.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn
from mxnet.gluon.contrib.nn import HybridConcurrent

from .resnest import ResNeSt
from .resnet import ResNetV1b

PYRAMID_BINS = (1, 2, 3, 6)
ASPP_RATES = (12, 24, 36)


def _conv_bn_relu(channels: int, kernel: int, in_channels: int, dilation: int = 1):
    seq = nn.HybridSequential(prefix="")
    pad = dilation * (kernel // 2)
    seq.add(
        nn.Conv2D(
            channels, kernel, 1, pad, dilation=dilation, use_bias=False, in_channels=in_channels
        ),
        nn.BatchNorm(in_channels=channels),
        nn.Activation("relu"),
    )
    return seq


def _classifier(in_channels: int, mid: int, classes: int) -> nn.HybridSequential:
    """3x3 conv + BN + ReLU + dropout + 1x1 conv to class scores (every head ends so)."""
    seq = nn.HybridSequential(prefix="")
    seq.add(
        nn.Conv2D(mid, 3, 1, 1, use_bias=False, in_channels=in_channels),
        nn.BatchNorm(in_channels=mid),
        nn.Activation("relu"),
        nn.Dropout(0.1),
        nn.Conv2D(classes, 1, in_channels=mid),
    )
    return seq


def _resize(F, x, size: tuple[int, int]):  # noqa: N803
    return F.contrib.BilinearResize2D(x, height=size[0], width=size[1], align_corners=True)


class _FCNHead(HybridBlock):
    def __init__(self, in_channels: int, classes: int):
        super().__init__()
        with self.name_scope():
            self.block = _classifier(in_channels, in_channels // 4, classes)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.block(x)


def adaptive_avg_pool(F, x, bins: int, size: tuple[int, int]):  # noqa: N803
    """Adaptive average pooling to bins x bins of a (N, C, *size) map (bin i spans
    floor(i*n/bins) .. ceil((i+1)*n/bins)): one pooling op when the size divides, else
    per-bin average pools (ONNX has no adaptive pooling; these export and compile)."""
    h, w = size
    if h % bins == 0 and w % bins == 0:
        return F.Pooling(
            x, kernel=(h // bins, w // bins), stride=(h // bins, w // bins), pool_type="avg"
        )
    rows = []
    for i in range(bins):
        y0, y1 = (i * h) // bins, -((-(i + 1) * h) // bins)
        cols = []
        for j in range(bins):
            x0, x1 = (j * w) // bins, -((-(j + 1) * w) // bins)
            cell = F.slice(x, begin=(None, None, y0, x0), end=(None, None, y1, x1))
            cols.append(F.Pooling(cell, kernel=(y1 - y0, x1 - x0), pool_type="avg"))
        rows.append(F.concat(*cols, dim=3))
    return F.concat(*rows, dim=2)


class _PyramidPooling(HybridBlock):
    def __init__(self, in_channels: int):
        super().__init__()
        self.feature_size = (60, 60)
        out = in_channels // 4
        with self.name_scope():
            for i in range(len(PYRAMID_BINS)):
                setattr(self, f"conv{i + 1}", _conv_bn_relu(out, 1, in_channels))

    def hybrid_forward(self, F, x):  # noqa: N803
        feats = [x]
        for i, bins in enumerate(PYRAMID_BINS):
            pooled = adaptive_avg_pool(F, x, bins, self.feature_size)
            feats.append(_resize(F, getattr(self, f"conv{i + 1}")(pooled), self.feature_size))
        return F.concat(*feats, dim=1)


class _PSPHead(HybridBlock):
    def __init__(self, classes: int, in_channels: int = 2048):
        super().__init__()
        with self.name_scope():
            self.psp = _PyramidPooling(in_channels)
            self.block = _classifier(2 * in_channels, 512, classes)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.block(self.psp(x))


class _AsppPooling(HybridBlock):
    """Image-level features: global average, 1x1 conv, spread back over the map."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.feature_size = (60, 60)
        with self.name_scope():
            self.gap = nn.HybridSequential(prefix="")
            self.gap.add(nn.GlobalAvgPool2D())
            self.gap.add(*_conv_bn_relu(channels, 1, in_channels))

    def hybrid_forward(self, F, x):  # noqa: N803
        return _resize(F, self.gap(x), self.feature_size)


class _ASPP(HybridBlock):
    def __init__(self, in_channels: int, channels: int = 256):
        super().__init__()
        with self.name_scope():
            self.concurent = HybridConcurrent(axis=1, prefix="")  # GluonCV's spelling
            self.concurent.add(_conv_bn_relu(channels, 1, in_channels))
            for rate in ASPP_RATES:
                self.concurent.add(_conv_bn_relu(channels, 3, in_channels, dilation=rate))
            self.concurent.add(_AsppPooling(in_channels, channels))
            self.project = nn.HybridSequential(prefix="")
            self.project.add(*_conv_bn_relu(channels, 1, 5 * channels), nn.Dropout(0.5))

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.project(self.concurent(x))


class _DeepLabHead(HybridBlock):
    def __init__(self, classes: int, in_channels: int = 2048):
        super().__init__()
        with self.name_scope():
            self.aspp = _ASPP(in_channels)
            self.block = _classifier(256, 256, classes)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.block(self.aspp(x))


_HEADS = {"fcn": lambda classes: _FCNHead(2048, classes), "psp": _PSPHead, "deeplab": _DeepLabHead}
# GluonCV's dilated backbones by family (resnetD: ResNet v1s, resnestD: ResNeSt)
_BACKBONES = {
    "resnet": lambda depth: ResNetV1b(depth, deep_stem=True, stem_width=64, dilated=True),
    "resnest": lambda depth: ResNeSt(depth, dilated=True),
}


class SegmentationModel(HybridBlock):
    """Dilated ResNet v1s (or ResNeSt: ``backbone``) + a head; forward: class scores
    (N, C, H, W) at input size."""

    def __init__(
        self,
        head: str,
        depth: int,
        classes: int,
        aux: bool = True,
        input_size: tuple[int, int] = (480, 480),
        backbone: str = "resnet",
    ):
        super().__init__()
        if head not in _HEADS:
            raise ValueError(f"segmentation head must be one of {sorted(_HEADS)}, got {head!r}")
        if backbone not in _BACKBONES:
            raise ValueError(
                f"segmentation backbone must be one of {sorted(_BACKBONES)}, got {backbone!r}"
            )
        self.classes = classes
        self.training_outputs = False  # True: (scores, auxiliary scores), for training
        with self.name_scope():
            base = _BACKBONES[backbone](depth)
            for name, block in base.stem_and_layers().items():
                setattr(self, name, block)
            self.head = _HEADS[head](classes)
            self.auxlayer = _FCNHead(1024, classes) if aux else None
        self.set_input_size(input_size)

    def set_input_size(self, size: tuple[int, int]) -> None:
        h, w = int(size[0]), int(size[1])
        if h % 8 or w % 8:
            raise ValueError(f"segmentation input size must be a multiple of 8, got {h}x{w}")
        self.input_size = (h, w)

        def visit(block: HybridBlock) -> None:  # the pooling blocks work at output stride 8
            if hasattr(block, "feature_size"):
                block.feature_size = (h // 8, w // 8)
            for child in block._children.values():
                visit(child)

        visit(self.head)

    def prepare_deploy(self, input_shape: tuple[int, ...]) -> None:
        """Build the graph for this (N, 3, H, W) input (sizes are static), after one
        imperative forward that completes deferred initialisation: a hybridized first call
        cannot, because the auxiliary head's parameters are not in the inference graph."""
        import mxnet as mx

        self.set_input_size(input_shape[2:])
        self(mx.nd.zeros(input_shape))

    def deploy_head(self) -> dict:
        return {
            "outputs": ["scores"],
            "postprocess": [{"op": "segment", "output": "scores", "num_classes": self.classes}],
        }

    def hybrid_forward(self, F, x):  # noqa: N803
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c3 = self.layer3(self.layer2(self.layer1(x)))
        out = _resize(F, self.head(self.layer4(c3)), self.input_size)
        if self.training_outputs and self.auxlayer is not None:
            return out, _resize(F, self.auxlayer(c3), self.input_size)
        return out


def segmentation(head: str, depth: int, classes: int, **kwargs) -> SegmentationModel:
    return SegmentationModel(head, depth, classes, **kwargs)
