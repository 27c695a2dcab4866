"""CenterNet (Zhou et al. 2019, "Objects as Points") on ResNet v1b with three upsampling
stages of transposed convolutions, or on MobileNetV3 with three DUC (pixel-shuffle)
upsamplers, GluonCV layout.

The network maps an image to three maps at a quarter of its size: per-class centre
heatmaps (after a sigmoid), box sizes (w, h) and sub-cell centre offsets, in units of the
output grid. Inference returns GluonCV's detections ``(ids, scores, boxes)``, shapes
(B, K), (B, K) and (B, K, 4): the heatmap's local maxima (a position equal to the maximum
of its 3x3 neighbourhood), the K best over all classes and positions, each a box centred
at its cell plus offset, scaled by the network's stride (4) to input pixels. There is no
NMS and no score cut: all K are returned. With ``raw_outputs = True`` the forward returns
the three maps instead: that is the deployable graph, and edgecv's C++ runtime performs the
same decode (``centernet_decode``).

Attribute tree as GluonCV's (``base_network.base_network`` = conv1 .. layer4 and
``base_network.deconv``, or ``base_network.feature`` and ``base_network.upsampling``;
``heads``), so its ``.params`` files load unchanged.
"""

from __future__ import annotations

from mxnet import init
from mxnet.gluon import HybridBlock, nn

from .dla import DeconvDLA
from .layers import SCORE_CUT
from .mobilenetv3 import mobilenet_v3
from .pose import DUC
from .resnet import ResNetV1b

STRIDE = 4  # input pixels per output cell: ResNet's 32, upsampled three times by 2
UPSAMPLE_CHANNELS = (256, 128, 64)
# MobileNetV3: each DUC's conv channels (a 2x pixel shuffle leaves a quarter of them)
DUC_CHANNELS = {"large": (512, 256, 256), "small": (512, 256, 128)}
HEAD_CHANNELS = 64
HEATMAP_PRIOR_BIAS = -2.19  # sigmoid(-2.19) ~ 0.1: the heatmap's initial foreground rate
# K: peaks kept per image, as GluonCV's presets (VOC images hold fewer objects than COCO's)
TOPK = {"voc": 40, "coco": 100}


class _DeconvResNet(HybridBlock):
    """ResNet v1b's stem and stages, then three (3x3 conv, BN, ReLU, 4x4 stride-2
    transposed conv, BN, ReLU) stages: ``base_network`` and ``deconv``."""

    def __init__(self, depth: int):
        super().__init__()
        with self.name_scope():
            self.base_network = nn.HybridSequential(prefix="")
            self.base_network.add(*ResNetV1b(depth).stem_and_layers().values())
            in_channels = 512 if depth < 50 else 2048
            self.deconv = nn.HybridSequential(prefix="deconv_")
            for channels in UPSAMPLE_CHANNELS:
                self.deconv.add(
                    nn.Conv2D(channels, 3, 1, 1, in_channels=in_channels),
                    nn.BatchNorm(momentum=0.9),
                    nn.Activation("relu"),
                    nn.Conv2DTranspose(channels, 4, 2, 1, use_bias=False, in_channels=channels),
                    nn.BatchNorm(momentum=0.9),
                    nn.Activation("relu"),
                )
                in_channels = channels

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.deconv(self.base_network(x))


class _DucMobileNetV3(HybridBlock):
    """MobileNetV3's features up to its global pool (``feature``), then three 2x DUC
    upsamplers (``upsampling``)."""

    def __init__(self, size: str):
        super().__init__()
        with self.name_scope():
            self.feature = mobilenet_v3(size).features[:-4]  # from the global pool on
            self.upsampling = nn.HybridSequential(prefix="upsampling_")
            self.upsampling.add(*(DUC(channels, 2) for channels in DUC_CHANNELS[size]))

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.upsampling(self.feature(x))


def _head(outputs: int, bias: float) -> nn.HybridSequential:
    """3x3 conv (64) + ReLU, then a 1x1 conv to ``outputs`` maps."""
    weights = init.Xavier() if bias else init.Normal(0.001)
    head = nn.HybridSequential(prefix="")
    head.add(
        nn.Conv2D(HEAD_CHANNELS, 3, 1, 1, weight_initializer=weights),
        nn.Activation("relu"),
        nn.Conv2D(outputs, 1, weight_initializer=weights, bias_initializer=init.Constant(bias)),
    )
    return head


class CenterNet(HybridBlock):
    """``base_network`` (backbone + upsampling to stride 4) and ``heads``: heatmap, wh,
    reg."""

    def __init__(self, base_network: HybridBlock, num_classes: int, topk: int = 100):
        super().__init__()
        self.num_classes = num_classes
        self.topk = topk
        self.raw_outputs = False
        with self.name_scope():
            self.base_network = base_network
            self.heads = nn.HybridSequential(prefix="heads_")
            self.heads.add(_head(num_classes, HEATMAP_PRIOR_BIAS), _head(2, 0.0), _head(2, 0.0))

    def prepare_deploy(self, input_shape: tuple[int, ...]) -> None:
        """Switch to the deployable graph (the three maps); the decode runs in C++."""
        self.raw_outputs = True

    def deploy_head(self) -> dict:
        """Names of the maps and the post-processing the runtime applies to them: the
        decode, then the runtime's NMS stage as a plain cut (IoU 1.0 suppresses nothing, as
        GluonCV applies no NMS; a run may lower it), scores above 0.01."""
        names = ["heatmap", "wh", "reg"]
        return {
            "outputs": names,
            "postprocess": [
                {
                    "op": "centernet_decode",
                    "outputs": names,
                    "num_classes": self.num_classes,
                    "stride": STRIDE,
                    "topk": self.topk,
                },
                {
                    "op": "nms",
                    "iou_threshold": 1.0,
                    "score_threshold": SCORE_CUT,
                    "topk": self.topk,
                    "max_detections": self.topk,
                    "class_agnostic": False,
                },
            ],
        }

    def decode(self, F, heatmap, wh, reg):  # noqa: N803
        """The three maps → GluonCV's (ids, scores, boxes) of the K best peaks."""
        peaks = heatmap * F.broadcast_equal(
            F.Pooling(heatmap, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type="max"),
            heatmap,
        )
        scores, index = F.topk(peaks.reshape((0, -1)), k=self.topk, ret_typ="both")
        # cells per map and per row, from the maps themselves; indices are whole floats
        # (exact below 2**24), split by remainders so that no quotient rounds up
        one_map = F.slice_axis(heatmap, axis=1, begin=0, end=1)
        cells = F.sum(F.ones_like(one_map), axis=(1, 2, 3)).reshape((-1, 1))
        width = F.sum(F.ones_like(F.slice_axis(one_map, axis=2, begin=0, end=1)), axis=(1, 2, 3))
        width = width.reshape((-1, 1))
        cell = F.broadcast_mod(index, cells)
        ids = F.broadcast_div(index - cell, cells)
        col = F.broadcast_mod(cell, width)
        row = F.broadcast_div(cell - col, width)
        batch = F.broadcast_like(F.contrib.arange_like(scores, axis=0).reshape((-1, 1)), scores)

        def at(maps, channel):  # (B, 2, H, W) → (B, K): channel of each peak's cell
            where = F.stack(batch, F.ones_like(scores) * channel, cell, axis=0)
            return F.gather_nd(maps.reshape((0, 0, -1)), where)

        cx, cy = col + at(reg, 0), row + at(reg, 1)
        half_w, half_h = at(wh, 0) / 2, at(wh, 1) / 2
        boxes = F.stack(cx - half_w, cy - half_h, cx + half_w, cy + half_h, axis=-1) * STRIDE
        return ids, scores, boxes

    def hybrid_forward(self, F, x):  # noqa: N803
        features = self.base_network(x)
        heatmap = F.sigmoid(self.heads[0](features))
        wh, reg = self.heads[1](features), self.heads[2](features)
        if self.raw_outputs:
            return heatmap, wh, reg
        return self.decode(F, heatmap, wh, reg)


def center_net(
    dataset: str,
    depth: int | None = None,
    mobilenetv3: str | None = None,
    dla: int | None = None,
    classes: int = 20,
) -> CenterNet:
    """CenterNet on resnet{depth}_v1b with transposed convolutions, on
    mobilenetv3_{mobilenetv3} (large, small) with DUC upsamplers, or on DLA-{dla} (34) with
    its aggregation upsampling; ``dataset`` picks GluonCV's K (voc 40, coco 100)."""
    if dataset not in TOPK:
        raise ValueError(f"unknown CenterNet dataset {dataset!r} (known: {', '.join(TOPK)})")
    if sum(b is not None for b in (depth, mobilenetv3, dla)) != 1:
        raise ValueError("a CenterNet needs one backbone: depth (ResNet), mobilenetv3 or dla")
    if dla is not None:
        if dla != 34:
            raise ValueError(f"DLA-{dla} is not in the zoo (DLA-34 is)")
        return CenterNet(DeconvDLA(), classes, TOPK[dataset])
    if mobilenetv3 is not None:
        if mobilenetv3 not in DUC_CHANNELS:
            raise ValueError(f"unknown MobileNetV3 size {mobilenetv3!r} (large, small)")
        return CenterNet(_DucMobileNetV3(mobilenetv3), classes, TOPK[dataset])
    return CenterNet(_DeconvResNet(depth), classes, TOPK[dataset])
