"""SSD (Liu et al. 2016) with VGG16-atrous, ResNet-50 v1 or MobileNet 1.0 backbones, GluonCV layout.

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
from .resnet import ResNetV1V2

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
}  # fmt: skip

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


class _Expander(HybridBlock):
    """Backbone cut at two feature maps, then 1x1-transition + 3x3/2 conv layers (BN eps 1e-3,
    gamma fixed as GluonCV's symbol BatchNorm)."""

    def __init__(self, backbone: str, num_filters=(512, 512, 256, 256)):
        super().__init__()
        if backbone == "resnet50_v1":
            features = ResNetV1V2(50, 1).features
            cut, end = 7, 8  # stage3 output (/16), stage4 output (/32)
        else:
            features = MobileNetV1(1.0).features
            cut, end = 69, 81  # relu22 (/16), relu26 (/32)
        with self.name_scope():
            self.base = nn.HybridSequential(prefix="")
            for layer in list(features._children.values())[:end]:
                self.base.add(layer)
            self.cut = cut
            self.expand = nn.HybridSequential(prefix="")
            for f in num_filters:
                block = nn.HybridSequential(prefix="")
                block.add(nn.Conv2D(f, 1, use_bias=False))
                block.add(nn.BatchNorm(epsilon=1e-3, scale=False), nn.Activation("relu"))
                block.add(nn.Conv2D(f, 3, 2, 1, use_bias=False))
                block.add(nn.BatchNorm(epsilon=1e-3, scale=False), nn.Activation("relu"))
                self.expand.add(block)

    def hybrid_forward(self, F, x):  # noqa: N803
        for i, layer in enumerate(self.base):
            x = layer(x)
            if i == self.cut - 1:
                first = x
        outputs = [first, x]
        for block in self.expand:
            x = block(x)
            outputs.append(x)
        return outputs


class _Predictor(HybridBlock):
    def __init__(self, channels: int):
        super().__init__()
        with self.name_scope():
            self.predictor = nn.Conv2D(channels, 3, padding=1)

    def hybrid_forward(self, F, x):  # noqa: N803
        return F.flatten(F.transpose(self.predictor(x), (0, 2, 3, 1)))


class _AnchorGenerator(HybridBlock):
    """Centre-size priors on a grid, stored as a (1, 1, H, W, 4A) constant as in GluonCV."""

    def __init__(self, sizes: tuple[float, float], ratios, step: float, alloc: int):
        super().__init__()
        small, large = sizes[0], float(np.sqrt(sizes[0] * sizes[1]))
        shapes = [(small, small), (large, large)] + [
            (small * np.sqrt(r), small / np.sqrt(r)) for r in ratios[1:]
        ]
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
        backbone, _, default_sizes, ratios, steps = CONFIGS[config]
        sizes = default_sizes if sizes is None else sizes
        self.num_classes = num_classes
        self.nms_thresh, self.nms_topk, self.post_nms = nms_thresh, nms_topk, post_nms
        self.raw_outputs = False
        with self.name_scope():
            self.features = (
                VGGAtrous(backbone) if backbone.startswith("vgg") else _Expander(backbone)
            )
            self.class_predictors = nn.HybridSequential(prefix="")
            self.box_predictors = nn.HybridSequential(prefix="")
            self.anchor_generators = nn.HybridSequential(prefix="")
            alloc = 128
            for i, (r, step) in enumerate(zip(ratios, steps, strict=True)):
                gen = _AnchorGenerator((sizes[i], sizes[i + 1]), r, step, alloc)
                self.anchor_generators.add(gen)
                self.class_predictors.add(_Predictor(gen.num_anchors * (num_classes + 1)))
                self.box_predictors.add(_Predictor(gen.num_anchors * 4))
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


def _map_symbol_features(loaded: dict, net: SSD) -> dict:
    """GluonCV's FeatureExpander stores the backbone by prefixed names (args first, then
    running statistics) and its extra layers as expand_(trans_)conv/bn{i}; map both onto
    this block's structural names, checking every shape."""
    out = {k: v for k, v in loaded.items() if not k.startswith("features.")}
    feats = {k[len("features.") :]: v for k, v in loaded.items() if k.startswith("features.")}
    ours = {
        k[len("features.") :]: p
        for k, p in net._collect_params_with_prefix().items()
        if k.startswith("features.")
    }
    base_args = [
        k for k in ours if k.startswith("base.") and not k.endswith(("running_mean", "running_var"))
    ]
    base_aux = [
        k for k in ours if k.startswith("base.") and k.endswith(("running_mean", "running_var"))
    ]
    src_base = [k for k in feats if not k.startswith("expand_")]
    src_args = [k for k in src_base if not k.endswith(("running_mean", "running_var"))]
    src_aux = [k for k in src_base if k.endswith(("running_mean", "running_var"))]
    if len(src_args) != len(base_args) or len(src_aux) != len(base_aux):
        raise AssertionError("backbone parameters do not match this model")
    pairs = list(zip(base_args, src_args, strict=True)) + list(zip(base_aux, src_aux, strict=True))
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
