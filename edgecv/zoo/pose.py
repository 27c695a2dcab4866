"""Top-down human pose estimation: SimpleBaseline (Xiao et al. 2018: ResNet + three 4x4
deconvolutions) and GluonCV's MobilePose (a mobile backbone + three DUC upsamplers).

Each forward maps a person crop (N, 3, 256, 192) to K keypoint heatmaps at a quarter of
the input size (N, K, 64, 48). Attribute trees follow GluonCV's (``resnet`` /
``deconv_layers`` / ``final_layer``; ``features`` / ``upsampling``), so its ``.params``
files load unchanged. The person crop and the heatmap decode live in the C++ runtime
(``person_crop`` preprocessing, ``heatmap_decode``).
"""

from __future__ import annotations

from mxnet import init
from mxnet.gluon import HybridBlock, nn
from mxnet.gluon.contrib.nn import PixelShuffle2D

from .mobilenet import mobilenet_v1, mobilenet_v2
from .mobilenetv3 import mobilenet_v3
from .resnet import ResNetV1b

NUM_JOINTS = 17


def _resnet_layers(base: str) -> list[HybridBlock]:
    """conv1, bn1, relu, maxpool, layer1..4 of resnet{depth}_v1b / _v1d."""
    depth, _, variant = base.removeprefix("resnet").partition("_")
    kwargs = {"deep_stem": True, "avg_down": True} if variant == "v1d" else {}
    return list(ResNetV1b(int(depth), **kwargs).stem_and_layers().values())


class _Heatmaps(HybridBlock):
    """What compile needs of a pose network: a static graph and the runtime's decode op."""

    def __init__(self, num_joints: int):
        super().__init__()
        self.num_joints = num_joints

    def prepare_deploy(self, input_shape: tuple[int, ...]) -> None:
        """Nothing to switch: the forward is the deployable graph."""

    def deploy_head(self) -> dict:
        return {
            "outputs": ["heatmaps"],
            "postprocess": [
                {"op": "heatmap_decode", "output": "heatmaps", "num_joints": self.num_joints}
            ],
        }


class SimplePoseResNet(_Heatmaps):
    def __init__(self, base: str = "resnet50_v1b", classes: int = NUM_JOINTS):
        super().__init__(classes)
        with self.name_scope():
            self.resnet = nn.HybridSequential(prefix="")
            self.resnet.add(*_resnet_layers(base))
            self.deconv_layers = nn.HybridSequential(prefix="")
            for _ in range(3):
                self.deconv_layers.add(
                    nn.Conv2DTranspose(
                        256, 4, 2, 1, use_bias=False, weight_initializer=init.Normal(0.001)
                    ),
                    nn.BatchNorm(),
                    nn.Activation("relu"),
                )
            self.final_layer = nn.Conv2D(classes, 1, weight_initializer=init.Normal(0.001))

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.final_layer(self.deconv_layers(self.resnet(x)))


class DUC(HybridBlock):
    """Dense upsampling convolution: 3x3 conv to r*r*C channels, then pixel shuffle (x r)."""

    def __init__(self, channels: int, factor: int = 2):
        super().__init__()
        with self.name_scope():
            self.conv = nn.Conv2D(channels, 3, padding=1, use_bias=False)
            self.bn = nn.BatchNorm()
            self.relu = nn.Activation("relu")
            self.pixel_shuffle = PixelShuffle2D(factor)

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.pixel_shuffle(self.relu(self.bn(self.conv(x))))


def _mobile_features(base: str) -> list[HybridBlock]:
    """The backbone without its classifier end, as GluonCV's MobilePose slices it."""
    if base.startswith("resnet"):
        return _resnet_layers(base)
    if base.startswith("mobilenetv3_"):
        return [mobilenet_v3(size=base.split("_")[1]).features[:-4]]
    if base.startswith("mobilenetv2_"):
        return [mobilenet_v2(multiplier=float(base.split("_")[1])).features[:-1]]
    if base.startswith("mobilenet"):
        return [mobilenet_v1(multiplier=float(base.removeprefix("mobilenet"))).features[:-2]]
    raise ValueError(f"no MobilePose backbone {base!r}")


class MobilePose(_Heatmaps):
    def __init__(self, base: str = "mobilenetv2_1.0", classes: int = NUM_JOINTS):
        super().__init__(classes)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(*_mobile_features(base))
            self.upsampling = nn.HybridSequential(prefix="")
            self.upsampling.add(
                nn.Conv2D(256, 1, 1, 0, use_bias=False),
                DUC(512, 2),
                DUC(256, 2),
                DUC(128, 2),
                nn.Conv2D(classes, 1, use_bias=False, weight_initializer=init.Normal(0.001)),
            )

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.upsampling(self.features(x))


def simple_pose(base: str, classes: int = NUM_JOINTS) -> SimplePoseResNet:
    return SimplePoseResNet(base, classes)


def mobile_pose(base: str, classes: int = NUM_JOINTS) -> MobilePose:
    return MobilePose(base, classes)
