"""SSD (Liu et al. 2016) with VGG16-atrous, ResNet v1/v2/v1b or MobileNet backbones, GluonCV layout.

Inference returns GluonCV's final detections ``(ids, scores, boxes)``: softmax over
background + classes, centre-size priors decoded with variances (0.1, 0.1, 0.2, 0.2),
per-class candidates above 0.01, class-aware ``box_nms`` (IoU 0.45, top 400, 100 kept).
With ``raw_outputs = True`` the forward returns the class logits (1, N, C+1) and box
offsets (1, N, 4): the deployable graph; priors are exported next to it.
"""

from __future__ import annotations

import re

import numpy as np
from mxnet.gluon import HybridBlock, nn

from .layers import final_detections, nms_op
from .mobilenet import MobileNetV1
from .resnet import ResNetV1b, ResNetV1V2, _ResidualV2

VARIANCES = (0.1, 0.1, 0.2, 0.2)
_RATIOS_3 = (1, 2, 0.5)
_RATIOS_5 = (1, 2, 0.5, 3, 1.0 / 3)

# name -> (backbone, input size, sizes, ratios per layer, steps)
CONFIGS = {
    "vgg16_atrous_300": ("vgg300", 300, (30, 60, 111, 162, 213, 264, 315),
                         (_RATIOS_3,) + (_RATIOS_5,) * 3 + (_RATIOS_3,) * 2, (8, 16, 32, 64, 100, 300)),
    "vgg16_atrous_512": ("vgg512", 512, (51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6),
                         (_RATIOS_3,) + (_RATIOS_5,) * 4 + (_RATIOS_3,) * 2, (8, 16, 32, 64, 128, 256, 512)),
    "resnet50_v1_512": ("resnet50_v1", 512, (51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492),
                        (_RATIOS_3,) + (_RATIOS_5,) * 3 + (_RATIOS_3,) * 2, (16, 32, 64, 128, 256, 512)),
    "mobilenet1.0_512": ("mobilenet1.0", 512, (51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492),
                         (_RATIOS_3,) + (_RATIOS_5,) * 3 + (_RATIOS_3,) * 2, (16, 32, 64, 128, 256, 512)),
    "mobilenet0.25_300": ("mobilenet0.25", 300, (21, 45, 99, 153, 207, 261, 315),
                          (_RATIOS_3,) + (_RATIOS_5,) * 3 + (_RATIOS_3,) * 2, (8, 16, 32, 64, 100, 300)),
    "mobilenet1.0_lite_300": ("mobilenet1.0", 300, (60, 105, 150, 195, 240, 285, 300),
                              (_RATIOS_3,) + (_RATIOS_5,) * 5, (16, 30, 60, 100, 150, 300)),
    "resnet34_v1b_300": ("resnet34_v1b", 300, (21, 45, 99, 153, 207, 261, 315),
                         (_RATIOS_3,) + (_RATIOS_5,) * 3 + (_RATIOS_3,) * 2, (8, 16, 32, 64, 100, 300)),
    "resnet18_v1_512": ("resnet18_v1", 512, (51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492),
                        (_RATIOS_3,) + (_RATIOS_5,) * 3 + (_RATIOS_3,) * 2, (16, 32, 64, 128, 256, 512)),
    "resnet101_v2_512": ("resnet101_v2", 512, (51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492),
                         (_RATIOS_3,) + (_RATIOS_5,) * 3 + (_RATIOS_3,) * 2, (16, 32, 64, 128, 256, 512)),
    "resnet152_v2_512": ("resnet152_v2", 512, (51.2, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6),
                         (_RATIOS_3,) + (_RATIOS_5,) * 4 + (_RATIOS_3,) * 2, (8, 16, 32, 64, 128, 256, 512)),
}  # fmt: skip

# configs whose extra layers or heads differ from the default (filters 512, 512, 256, 256, 1x1
# transitions as wide as the layer, 3x3 predictors, SSD priors): GluonCV's presets
_HEADS = {
    "mobilenet0.25_300": {"filters": (256, 256, 128, 128)},
    # TF's ssd_mobilenet_v1 layout: half-width transitions (at least 64), 1x1 predictors,
    # "lite" priors
    "mobilenet1.0_lite_300": {
        "filters": (512, 256, 256, 128),
        "reduce_ratio": 0.5,
        "min_depth": 64,
        "predictor_kernel": 1,
        "lite_priors": True,
    },
}

# ResNet v2 backbones are tapped inside residual units, where GluonCV's presets name them
# (stage S's activation N counts the unit's three ReLUs in order): (stage, unit, relu)
_V2_TAPS = {
    "resnet101_v2": ((3, 7, 1), (4, 0, 2)),
    "resnet152_v2": ((2, 2, 1), (3, 11, 2), (4, 0, 2)),
}

# GluonCV's COCO variants use other anchor sizes where these differ from VOC
COCO_SIZES = {
    "vgg16_atrous_300": (21, 45, 99, 153, 207, 261, 315),
    "resnet50_v1_512": (51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72),
}

_VGG_EXTRAS = {
    "vgg300": (((256, 1, 1, 0), (512, 3, 2, 1)), ((128, 1, 1, 0), (256, 3, 2, 1)),
               ((128, 1, 1, 0), (256, 3, 1, 0)), ((128, 1, 1, 0), (256, 3, 1, 0))),
    "vgg512": (((256, 1, 1, 0), (512, 3, 2, 1)), ((128, 1, 1, 0), (256, 3, 2, 1)),
               ((128, 1, 1, 0), (256, 3, 2, 1)), ((128, 1, 1, 0), (256, 3, 2, 1)),
               ((128, 1, 1, 0), (256, 4, 1, 1))),
}  # fmt: skip


class _L2Normalize(HybridBlock):
    """x / sqrt(sum_c x² + eps) · scale, written with basic ops (TVM has no LpNormalization)."""

    def __init__(self, channels: int, initial: float, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        with self.name_scope():
            self.scale = self.params.get(
                "scale", shape=(1, channels, 1, 1), init=_constant(initial)
            )

    def hybrid_forward(self, F, x, scale):  # noqa: N803
        norm = F.sqrt(F.sum(x * x, axis=1, keepdims=True) + self.eps)
        return F.broadcast_mul(F.broadcast_div(x, norm), scale)


def _constant(value: float):
    import mxnet as mx

    return mx.init.Constant(value)


class VGGAtrous(HybridBlock):
    """VGG16 with fc6/fc7 as (dilated) convolutions, conv4_3 L2-normalised, plus extra layers."""

    def __init__(self, variant: str):
        super().__init__()
        # inputs arrive normalised by ImageNet mean/std; VGG was trained on mean-subtracted 0..255
        init_scale = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1) * 255
        with self.name_scope():
            self.init_scale = self.params.get_constant("init_scale", init_scale)
            self.stages = nn.HybridSequential(prefix="")
            for count, filters in zip((2, 2, 3, 3, 3), (64, 128, 256, 512, 512), strict=True):
                stage = nn.HybridSequential(prefix="")
                for _ in range(count):
                    stage.add(nn.Conv2D(filters, 3, padding=1), nn.Activation("relu"))
                self.stages.add(stage)
            fc = nn.HybridSequential(prefix="")
            fc.add(nn.Conv2D(1024, 3, padding=6, dilation=6), nn.Activation("relu"))
            fc.add(nn.Conv2D(1024, 1), nn.Activation("relu"))
            self.stages.add(fc)
            self.norm4 = _L2Normalize(512, 20)
            self.extras = nn.HybridSequential(prefix="")
            for (c1, k1, s1, p1), (c2, k2, s2, p2) in _VGG_EXTRAS[variant]:
                extra = nn.HybridSequential(prefix="")
                extra.add(nn.Conv2D(c1, k1, s1, p1), nn.Activation("relu"))
                extra.add(nn.Conv2D(c2, k2, s2, p2), nn.Activation("relu"))
                self.extras.add(extra)

    def hybrid_forward(self, F, x, init_scale):  # noqa: N803
        def pool(y, k=2, s=2, p=0):
            return F.Pooling(
                y,
                pool_type="max",
                kernel=(k, k),
                stride=(s, s),
                pad=(p, p),
                pooling_convention="full",
            )

        x = F.broadcast_mul(x, init_scale)
        for stage in self.stages[:3]:
            x = pool(stage(x))
        x = self.stages[3](x)
        outputs = [self.norm4(x)]
        x = pool(self.stages[4](pool(x)), 3, 1, 1)
        x = self.stages[5](x)
        outputs.append(x)
        for extra in self.extras:
            x = extra(x)
            outputs.append(x)
        return outputs


class _TruncatedUnitV2(HybridBlock):
    """The first layers of a pre-activation bottleneck unit, up to its third ReLU (the
    layers GluonCV's graph keeps when a feature is tapped there)."""

    def __init__(self, unit: _ResidualV2):
        super().__init__()
        with self.name_scope():
            self.bn1, self.conv1, self.bn2 = unit.bn1, unit.conv1, unit.bn2
            self.conv2, self.bn3 = unit.conv2, unit.bn3


def _unit_v2_relus(F, unit, x):  # noqa: N803
    """(the unit's three ReLU outputs, its output or None when truncated)."""
    a0 = F.Activation(unit.bn1(x), act_type="relu")
    a1 = F.Activation(unit.bn2(unit.conv1(a0)), act_type="relu")
    a2 = F.Activation(unit.bn3(unit.conv2(a1)), act_type="relu")
    if isinstance(unit, _TruncatedUnitV2):
        return (a0, a1, a2), None
    shortcut = unit.downsample(a0) if unit.downsample is not None else x
    return (a0, a1, a2), unit.conv3(a2) + shortcut


def _backbone(backbone: str) -> tuple[list[HybridBlock], object]:
    """The backbone's layers as GluonCV's feature graph keeps them, and where features are
    taken: after layer i (an int), or (layer, unit, relu) inside a v2 stage."""
    if backbone.startswith("mobilenet"):
        features = MobileNetV1(float(backbone[len("mobilenet") :])).features
        return list(features._children.values())[:81], (69, 81)  # relu22 (/16), relu26 (/32)
    depth = int(re.match(r"resnet(\d+)_v", backbone).group(1))
    if backbone.endswith("_v1"):
        features = ResNetV1V2(depth, 1).features
        return list(features._children.values())[:8], (7, 8)  # stage3 (/16), stage4 (/32)
    # v2: input BN, conv, BN, ReLU, pool, then stages 1..4 at layers 5..8
    taps = _V2_TAPS[backbone]
    stage, unit, _ = taps[-1]
    layers = list(ResNetV1V2(depth, 2).features._children.values())[: 5 + stage]
    last = nn.HybridSequential(prefix="")
    for kept in list(layers[4 + stage]._children.values())[:unit]:
        last.add(kept)
    last.add(_TruncatedUnitV2(layers[4 + stage][unit]))
    layers[4 + stage] = last
    return layers, tuple((4 + s, u, r) for s, u, r in taps)


def _extra_layers(filters, reduce_ratio: float, min_depth: int) -> nn.HybridSequential:
    """GluonCV's expansion: 1x1 transition + 3x3/2 conv per filter count (BN eps 1e-3,
    gamma fixed as its symbol BatchNorm)."""
    expand = nn.HybridSequential(prefix="")
    for f in filters:
        trans = max(min_depth, int(round(f * reduce_ratio)))
        block = nn.HybridSequential(prefix="")
        block.add(nn.Conv2D(trans, 1, use_bias=False))
        block.add(nn.BatchNorm(epsilon=1e-3, scale=False), nn.Activation("relu"))
        block.add(nn.Conv2D(f, 3, 2, 1, use_bias=False))
        block.add(nn.BatchNorm(epsilon=1e-3, scale=False), nn.Activation("relu"))
        expand.add(block)
    return expand


class _Expander(HybridBlock):
    """Backbone cut at two or three feature maps, then GluonCV's extra layers."""

    def __init__(
        self,
        backbone: str,
        filters=(512, 512, 256, 256),
        reduce_ratio: float = 1.0,
        min_depth: int = 128,
    ):
        super().__init__()
        layers, self.taps = _backbone(backbone)
        with self.name_scope():
            self.base = nn.HybridSequential(prefix="")
            self.base.add(*layers)
            self.expand = _extra_layers(filters, reduce_ratio, min_depth)

    def hybrid_forward(self, F, x):  # noqa: N803
        outputs = []
        taps = {t if isinstance(t, int) else t[0] + 1: t for t in self.taps}
        for i, layer in enumerate(self.base):
            tap = taps.get(i + 1)
            if isinstance(tap, tuple):  # inside a v2 stage: run its units one by one
                for u, unit in enumerate(layer):
                    relus, out = _unit_v2_relus(F, unit, x)
                    if u == tap[1]:
                        outputs.append(relus[tap[2]])
                    x = out
            else:
                x = layer(x)
                if tap is not None:
                    outputs.append(x)
        x = outputs[-1]
        for block in self.expand:
            x = block(x)
            outputs.append(x)
        return outputs


class _ResNetV1bFeatures(HybridBlock):
    """GluonCV's ResNet-v1b SSD features: ``stage1`` (stem, layer1, layer2; /8), ``stage2``
    (layer3 at stride 1, layer4; /16), ``more_stages`` (biased convs, no BN; the last 3x3
    unpadded)."""

    def __init__(self, depth: int, filters=(256, 256, 128, 128), min_depth: int = 128):
        super().__init__()
        res = ResNetV1b(depth, strides=(1, 2, 1, 2))
        with self.name_scope():
            self.stage1 = nn.HybridSequential(prefix="")
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2"):
                self.stage1.add(getattr(res, name))
            self.stage2 = nn.HybridSequential(prefix="")
            self.stage2.add(res.layer3, res.layer4)
            self.more_stages = nn.HybridSequential(prefix="")
            for i, f in enumerate(filters):
                stage = nn.HybridSequential(prefix="")
                stage.add(nn.Conv2D(max(min_depth, f), 1), nn.Activation("relu"))
                stage.add(nn.Conv2D(f, 3, 2, 0 if i == len(filters) - 1 else 1))
                stage.add(nn.Activation("relu"))
                self.more_stages.add(stage)

    def hybrid_forward(self, F, x):  # noqa: N803
        y1 = self.stage1(x)
        outputs = [y1, self.stage2(y1)]
        for stage in self.more_stages:
            outputs.append(stage(outputs[-1]))
        return outputs


class _Predictor(HybridBlock):
    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        with self.name_scope():
            self.predictor = nn.Conv2D(channels, kernel, padding=kernel // 2)

    def hybrid_forward(self, F, x):  # noqa: N803
        return F.flatten(F.transpose(self.predictor(x), (0, 2, 3, 1)))


class _AnchorGenerator(HybridBlock):
    """Centre-size priors on a grid, stored as a (1, 1, H, W, 4A) constant as in GluonCV.
    ``lite``: GluonCV's LiteAnchorGenerator (TF's ssd_mobilenet_v1): a half-size square, the
    ratios, and the geometric-mean square last except on the first layer."""

    def __init__(
        self, sizes: tuple[float, float], ratios, step: float, alloc: int, lite_first=None
    ):
        super().__init__()
        small, large = sizes[0], float(np.sqrt(sizes[0] * sizes[1]))
        stretched = [(small * np.sqrt(r), small / np.sqrt(r)) for r in ratios[1:]]
        if lite_first is None:
            shapes = [(small, small), (large, large)] + stretched
        else:
            shapes = [(small / 2, small / 2)] + stretched + ([] if lite_first else [(large, large)])
        self.num_anchors = len(shapes)
        cy, cx = np.meshgrid(
            (np.arange(alloc) + 0.5) * step, (np.arange(alloc) + 0.5) * step, indexing="ij"
        )
        grid = [np.stack([cx, cy, np.full_like(cx, w), np.full_like(cx, h)], -1) for w, h in shapes]
        anchors = np.concatenate(grid, -1).reshape(1, 1, alloc, alloc, -1).astype(np.float32)
        with self.name_scope():
            self.anchors = self.params.get_constant("anchors", anchors)

    def hybrid_forward(self, F, x, anchors):  # noqa: N803
        return F.slice_like(anchors, x * 0, axes=(2, 3)).reshape((1, -1, 4))


class SSD(HybridBlock):
    """``features``, ``class_predictors``, ``box_predictors``, ``anchor_generators``."""

    def __init__(
        self, config: str, num_classes: int, sizes=None, nms_thresh=0.45, nms_topk=400, post_nms=100
    ):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"SSD config must be one of {sorted(CONFIGS)}, got {config!r}")
        backbone, _, default_sizes, ratios, steps = CONFIGS[config]
        head = dict(_HEADS.get(config, {}))
        kernel, lite = head.pop("predictor_kernel", 3), head.pop("lite_priors", False)
        sizes = default_sizes if sizes is None else sizes
        self.num_classes = num_classes
        self.nms_thresh, self.nms_topk, self.post_nms = nms_thresh, nms_topk, post_nms
        self.raw_outputs = False
        with self.name_scope():
            if backbone.startswith("vgg"):
                self.features = VGGAtrous(backbone)
            elif backbone.endswith("_v1b"):
                self.features = _ResNetV1bFeatures(int(backbone[len("resnet") : -4]), **head)
            else:
                self.features = _Expander(backbone, **head)
            self.class_predictors = nn.HybridSequential(prefix="")
            self.box_predictors = nn.HybridSequential(prefix="")
            self.anchor_generators = nn.HybridSequential(prefix="")
            alloc = 128
            for i, (r, step) in enumerate(zip(ratios, steps, strict=True)):
                gen = _AnchorGenerator(
                    (sizes[i], sizes[i + 1]), r, step, alloc, (i == 0) if lite else None
                )
                self.anchor_generators.add(gen)
                self.class_predictors.add(_Predictor(gen.num_anchors * (num_classes + 1), kernel))
                self.box_predictors.add(_Predictor(gen.num_anchors * 4, kernel))
                alloc = max(alloc // 2, 16)

    def hybrid_forward(self, F, x):  # noqa: N803
        features = self.features(x)
        cls = F.concat(*[p(f) for f, p in zip(features, self.class_predictors, strict=True)], dim=1)
        box = F.concat(*[p(f) for f, p in zip(features, self.box_predictors, strict=True)], dim=1)
        cls = cls.reshape((0, -1, self.num_classes + 1))
        box = box.reshape((0, -1, 4))
        if self.raw_outputs:
            return cls, box
        anchors = F.concat(
            *[g(f) for f, g in zip(features, self.anchor_generators, strict=True)], dim=1
        )
        a = [anchors.slice_axis(axis=-1, begin=i, end=i + 1) for i in range(4)]
        p = [box.slice_axis(axis=-1, begin=i, end=i + 1) for i in range(4)]
        cx = F.broadcast_add(F.broadcast_mul(p[0] * VARIANCES[0], a[2]), a[0])
        cy = F.broadcast_add(F.broadcast_mul(p[1] * VARIANCES[1], a[3]), a[1])
        hw = F.broadcast_mul(F.exp(p[2] * VARIANCES[2]), a[2]) / 2
        hh = F.broadcast_mul(F.exp(p[3] * VARIANCES[3]), a[3]) / 2
        boxes = F.concat(cx - hw, cy - hh, cx + hw, cy + hh, dim=-1)
        scores = F.softmax(cls, axis=-1).slice_axis(axis=-1, begin=1, end=None)
        keep = scores > 0.01
        ids = F.broadcast_add(
            F.zeros_like(scores), F.arange(0, self.num_classes).reshape((1, 1, -1))
        )
        ids = F.where(keep, ids, F.ones_like(ids) * -1)
        scores = F.where(keep, scores, F.zeros_like(scores))
        per_class = [
            F.concat(
                ids.slice_axis(axis=-1, begin=i, end=i + 1),
                scores.slice_axis(axis=-1, begin=i, end=i + 1),
                boxes,
                dim=-1,
            )
            for i in range(self.num_classes)
        ]
        return final_detections(
            F, F.concat(*per_class, dim=1), self.nms_thresh, self.nms_topk, self.post_nms
        )

    def priors(self, input_shape: tuple[int, ...]) -> np.ndarray:
        """The (N, 4) centre-size priors of an input shape, in the order of the outputs."""
        import mxnet as mx

        feats = self.features(mx.nd.zeros(input_shape))
        return np.concatenate(
            [g(f).asnumpy()[0] for f, g in zip(feats, self.anchor_generators, strict=True)]
        )

    def prepare_deploy(self, input_shape: tuple[int, ...]) -> None:
        import mxnet as mx

        self.raw_outputs = False
        self(mx.nd.zeros(input_shape))  # completes deferred initialisation
        self.raw_outputs = True
        self._deploy_priors = self.priors(input_shape).astype(np.float32)

    def deploy_head(self) -> dict:
        return {
            "outputs": ["class_logits", "box_offsets"],
            "files": {"priors.bin": self._deploy_priors},
            "postprocess": [
                {
                    "op": "ssd_decode",
                    "class_output": "class_logits",
                    "box_output": "box_offsets",
                    "priors": "priors.bin",
                    "num_classes": self.num_classes,
                    "variances": list(VARIANCES),
                },
                nms_op(self.nms_thresh, self.nms_topk, self.post_nms),
            ],
        }

    def load_parameters(self, filename, ctx=None, **kwargs):  # noqa: D102
        """Also reads GluonCV files whose backbone was a symbol block (prefix-named keys)."""
        import mxnet as mx

        loaded = mx.nd.load(filename)
        if not any(re.match(r"features\.[a-z]+\d+_", k) for k in loaded):
            return super().load_parameters(filename, ctx=ctx, **kwargs)
        mapped = _map_symbol_features(loaded, self)
        for name, param in self._collect_params_with_prefix().items():
            if name not in mapped:
                raise AssertionError(f"parameter {name} missing in {filename}")
            param._load_init(mapped[name], ctx or mx.cpu())


_SYMBOL_PARAM = re.compile(
    r"(.*?)(conv|batchnorm)(\d+)_(weight|bias|gamma|beta|running_mean|running_var)"
)
_BN_PARAMS = ("gamma", "beta", "running_mean", "running_var")


def _symbol_layers(names: list[str]) -> dict[str, list[dict[str, str]]]:
    """A symbol backbone's entries per layer kind, each kind in creation order: by name
    prefix (in the order the file first shows it: stem, then stage by stage) and the layer's
    index under it. The file's own order is the graph's, which can put a shortcut before the
    body it is added to (GluonCV's basic v1 unit adds ``residual + x``)."""
    prefixes: dict[str, int] = {}
    layers: dict[str, dict[tuple[int, int], dict[str, str]]] = {"conv": {}, "batchnorm": {}}
    for name in names:
        m = _SYMBOL_PARAM.fullmatch(name)
        if m is None:
            raise AssertionError(f"unexpected backbone parameter {name}")
        prefix, kind, index, param = m.groups()
        prefixes.setdefault(prefix, len(prefixes))
        layers[kind].setdefault((prefixes[prefix], int(index)), {})[param] = name
    return {kind: [found[k] for k in sorted(found)] for kind, found in layers.items()}


def _own_layers(names: list[str]) -> dict[str, list[dict[str, str]]]:
    """This block's backbone entries per layer kind, in definition order."""
    layers: dict[str, dict[str, dict[str, str]]] = {"conv": {}, "batchnorm": {}}
    for name in names:
        layer, param = name.rsplit(".", 1)
        kind = "batchnorm" if param in _BN_PARAMS else "conv"
        layers[kind].setdefault(layer, {})[param] = name
    return {kind: list(found.values()) for kind, found in layers.items()}


def _map_symbol_features(loaded: dict, net: SSD) -> dict:
    """GluonCV's FeatureExpander stores the backbone by prefixed names and its extra layers
    as expand_(trans_)conv/bn{i}; map both onto this block's structural names, pairing
    backbone layers kind by kind in creation order and checking every shape."""
    out = {k: v for k, v in loaded.items() if not k.startswith("features.")}
    feats = {k[len("features.") :]: v for k, v in loaded.items() if k.startswith("features.")}
    ours = {
        k[len("features.") :]: p
        for k, p in net._collect_params_with_prefix().items()
        if k.startswith("features.")
    }
    own = _own_layers([k for k in ours if k.startswith("base.")])
    theirs = _symbol_layers([k for k in feats if not k.startswith("expand_")])
    pairs = []
    for kind in ("conv", "batchnorm"):
        if len(own[kind]) != len(theirs[kind]):
            raise AssertionError(
                f"backbone has {len(theirs[kind])} {kind} layers, this model "
                f"{len(own[kind])}: the file is not for this model"
            )
        for mine, other in zip(own[kind], theirs[kind], strict=True):
            if set(mine) != set(other):
                raise AssertionError(f"{sorted(other.values())} do not fit {sorted(mine.values())}")
            pairs += [(mine[p], other[p]) for p in mine]
    names = {
        "weight": "weight",
        "gamma": "gamma",
        "beta": "beta",
        "moving_mean": "running_mean",
        "moving_var": "running_var",
    }
    for i in range(len(net.features.expand)):
        for src_layer, ours_conv, ours_bn in (("trans_", 0, 1), ("", 3, 4)):
            pairs.append((f"expand.{i}.{ours_conv}.weight", f"expand_{src_layer}conv{i}_weight"))
            for s, o in names.items():
                if s != "weight":
                    pairs.append((f"expand.{i}.{ours_bn}.{o}", f"expand_{src_layer}bn{i}_{s}"))
    for ours_name, src_name in pairs:
        value = feats[src_name]
        if ours_name.endswith("gamma") and ".expand." in f".{ours_name}":
            value = value * 0 + 1  # fixed gamma in the symbol BatchNorm
        want = tuple(ours[ours_name].shape)
        if len(want) != value.ndim or any(
            w not in (0, v) for w, v in zip(want, value.shape, strict=True)
        ):
            raise AssertionError(
                f"{src_name} {value.shape} does not fit {ours_name} {ours[ours_name].shape}"
            )
        out["features." + ours_name] = value
    return out


def ssd(config: str, classes: int = 20, dataset: str = "voc") -> SSD:
    sizes = COCO_SIZES.get(config) if dataset == "coco" else None
    return SSD(config, classes, sizes=sizes)
