"""Residual Attention Networks (Wang et al. 2017), ImageNet and CIFAR-10, GluonCV layout.

Pre-activation bottleneck units (BN, ReLU, 1x1 / 3x3 / 1x1 convs to ``channels``, a strided
or widening unit projecting its pre-activated input with a 1x1 conv) interleaved with
attention modules. A module runs ``p`` units, then a trunk of ``t`` units beside a mask
branch: an hourglass that max-pools (3x3, stride 2) ``levels`` times with ``r`` units after
each pool (``2r`` at the bottom) and a skip unit at every level but the bottom one, then
upsamples step by step (bilinear, aligned corners), adding the level's own output and skip
unit, with ``r`` units after each step but the last; the last step adds the trunk and ends in
BN-ReLU-1x1-BN-ReLU-1x1-sigmoid. The module's output is one unit over (1 + mask) x trunk.
A module without pooling (the CIFAR net's third stage) takes its mask from ``2r`` units and
the sigmoid layers directly.

Where GluonCV differs, and why: its masks resize to sizes fixed for one input (56/28/14 at
224, 32/16 at 32) and its head average-pools a fixed 7x7 (8x8 on CIFAR); here every
upsampling doubles (MXNet's ``BilinearResize2D`` with scale 2, which exports to ONNX and
compiles) and the head pools globally. At GluonCV's input sizes both are the same
computation, and the network also runs at other sizes whose sides are multiples of 32 (4 for
CIFAR), where every pooled map halves exactly.

Attribute trees as GluonCV's (``conv1``, ``mpool1``, ``residual_block1..6``,
``attention_module1..3`` of modules with ``first_residual_blocks``, ``trunk_branches``,
``softmax{i}_blocks``, ``skip{i}_connection_residual_block``, ``last_blocks``; units with
``bn1..3``, ``conv1..4``; ``mpool2``, ``fc``), so its ``.params`` files load unchanged.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

# depth -> (attention modules per stage, (p, t, r) units), GluonCV's table (depth 36m + 20)
_PRESETS = {
    56: ((1, 1, 1), (1, 2, 1)),
    92: ((1, 2, 3), (1, 2, 1)),
    128: ((2, 3, 4), (1, 2, 1)),
    164: ((3, 4, 5), (1, 2, 1)),
    200: ((4, 5, 6), (1, 2, 1)),
    236: ((5, 6, 7), (1, 2, 1)),
    452: ((5, 6, 7), (2, 4, 3)),
}


class _Unit(HybridBlock):
    """Pre-activation bottleneck (a quarter of ``channels`` inside). A unit that strides or
    changes the width projects its pre-activated input (``conv4``); others add the input."""

    def __init__(self, channels: int, in_channels: int = 0, stride: int = 1):
        super().__init__()
        self.projects = stride != 1 or (in_channels or channels) != channels
        with self.name_scope():
            self.bn1 = nn.BatchNorm()
            self.conv1 = nn.Conv2D(channels // 4, 1, use_bias=False)
            self.bn2 = nn.BatchNorm()
            self.conv2 = nn.Conv2D(channels // 4, 3, stride, 1, use_bias=False)
            self.bn3 = nn.BatchNorm()
            self.conv3 = nn.Conv2D(channels, 1, use_bias=False)
            if self.projects:
                self.conv4 = nn.Conv2D(channels, 1, stride, use_bias=False)

    def hybrid_forward(self, F, x):  # noqa: N803
        pre = F.Activation(self.bn1(x), act_type="relu")
        out = F.Activation(self.bn2(self.conv1(pre)), act_type="relu")
        out = F.Activation(self.bn3(self.conv2(out)), act_type="relu")
        return self.conv3(out) + (self.conv4(pre) if self.projects else x)


def _units(count: int, channels: int) -> nn.HybridSequential:
    seq = nn.HybridSequential(prefix="")
    for _ in range(count):
        seq.add(_Unit(channels))
    return seq


def _mask_head(channels: int) -> nn.HybridSequential:
    """BN, ReLU, 1x1, BN, ReLU, 1x1, sigmoid (the layer indices GluonCV's files use)."""
    seq = nn.HybridSequential(prefix="")
    for _ in range(2):
        seq.add(nn.BatchNorm(), nn.Activation("relu"), nn.Conv2D(channels, 1, use_bias=False))
    seq.add(nn.Activation("sigmoid"))
    return seq


def _max_pool() -> nn.MaxPool2D:
    return nn.MaxPool2D(3, 2, 1)


class AttentionModule(HybridBlock):
    """Trunk (``t`` units) times (1 + a soft mask from an hourglass of ``levels`` max pools),
    between ``p`` units and one more. Block names follow GluonCV's: the mask's unit groups
    are ``softmax1_blocks`` .. ``softmax{2 levels}_blocks`` in the order they run (the last
    is the sigmoid head; ``softmax2_blocks`` when ``levels`` is 0)."""

    def __init__(self, channels: int, levels: int, units: tuple[int, int, int]):
        super().__init__()
        p, t, r = units
        self.levels = levels
        with self.name_scope():
            self.first_residual_blocks = _units(p, channels)
            self.trunk_branches = _units(t, channels)
            for i in range(1, levels + 1):  # down: pool, units (twice as many at the bottom)
                setattr(self, f"mpool{i}", _max_pool())
                setattr(self, f"softmax{i}_blocks", _units(2 * r if i == levels else r, channels))
                if i < levels:
                    setattr(self, f"skip{i}_connection_residual_block", _Unit(channels))
            if levels == 0:
                self.softmax1_blocks = _units(2 * r, channels)
            for i in range(levels + 1, 2 * levels):  # up: units after each step but the last
                setattr(self, f"softmax{i}_blocks", _units(r, channels))
            setattr(self, f"softmax{max(2 * levels, 2)}_blocks", _mask_head(channels))
            self.last_blocks = _Unit(channels)

    def hybrid_forward(self, F, x):  # noqa: N803
        x = self.first_residual_blocks(x)
        trunk = self.trunk_branches(x)
        if self.levels == 0:
            mask = self.softmax2_blocks(self.softmax1_blocks(x))
        else:
            down, skips, out = [], [], x
            for i in range(1, self.levels + 1):
                out = getattr(self, f"softmax{i}_blocks")(getattr(self, f"mpool{i}")(out))
                down.append(out)
                if i < self.levels:
                    skips.append(getattr(self, f"skip{i}_connection_residual_block")(out))
            for step in range(1, self.levels + 1):  # back up to level levels - step
                up = F.contrib.BilinearResize2D(
                    out, scale_height=2.0, scale_width=2.0, align_corners=True
                )
                level = self.levels - step
                if level == 0:
                    out = up + trunk
                else:
                    out = up + down[level - 1] + skips[level - 1]
                out = getattr(self, f"softmax{self.levels + step}_blocks")(out)
            mask = out
        return self.last_blocks((1 + mask) * trunk)


class ResidualAttentionNet(HybridBlock):
    """The stem, then three stages of a unit (the first strided in the ImageNet net, all
    but the first in the CIFAR net) and attention modules, three units of the widest width,
    BN, ReLU, a global average pool and a 1x1 conv (``fc``) to class scores.

    ImageNet (``cifar=False``): 7x7/2 stem of 64 and a 3x3/2 max pool, stages of 256, 512,
    1024 with masks of 3, 2, 1 pooling levels, 2048 at the end. CIFAR: a 3x3 stem of 32,
    stages of 128, 256, 512 with masks of 2, 1, 0 pooling levels, 1024 at the end."""

    def __init__(self, depth: int, classes: int = 1000, cifar: bool = False):
        super().__init__()
        if depth not in _PRESETS:
            raise ValueError(
                f"Residual Attention Network depth {depth}: GluonCV's are {sorted(_PRESETS)}"
            )
        modules, units = _PRESETS[depth]
        stem, widths, levels = (
            (32, (128, 256, 512), (2, 1, 0)) if cifar else (64, (256, 512, 1024), (3, 2, 1))
        )
        with self.name_scope():
            self.conv1 = nn.HybridSequential(prefix="")
            if cifar:
                self.conv1.add(nn.Conv2D(stem, 3, 1, 1, use_bias=False))
            else:
                self.conv1.add(nn.Conv2D(stem, 7, 2, 3, use_bias=False))
            self.conv1.add(nn.BatchNorm(), nn.Activation("relu"))
            if not cifar:
                self.mpool1 = _max_pool()
            in_channels = stem
            for stage in range(3):
                stride = 1 if stage == 0 else 2
                block = _Unit(widths[stage], in_channels, stride)
                setattr(self, f"residual_block{stage + 1}", block)
                attention = nn.HybridSequential(prefix="")
                for _ in range(modules[stage]):
                    attention.add(AttentionModule(widths[stage], levels[stage], units))
                setattr(self, f"attention_module{stage + 1}", attention)
                in_channels = widths[stage]
            last = 2 * widths[-1]
            self.residual_block4 = _Unit(last, in_channels, 1 if cifar else 2)
            self.residual_block5 = _Unit(last)
            self.residual_block6 = _Unit(last)
            self.mpool2 = nn.HybridSequential(prefix="")
            self.mpool2.add(nn.BatchNorm(), nn.Activation("relu"), nn.GlobalAvgPool2D())
            self.fc = nn.Conv2D(classes, 1)
        self.cifar = cifar

    def hybrid_forward(self, F, x):  # noqa: N803
        x = self.conv1(x)
        if not self.cifar:
            x = self.mpool1(x)
        for stage in range(1, 4):
            x = getattr(self, f"attention_module{stage}")(
                getattr(self, f"residual_block{stage}")(x)
            )
        x = self.residual_block6(self.residual_block5(self.residual_block4(x)))
        return F.flatten(self.fc(self.mpool2(x)))


def residual_attention(depth: int, classes: int = 1000) -> ResidualAttentionNet:
    """GluonCV's ``residualattentionnet{depth}`` (224x224 ImageNet)."""
    return ResidualAttentionNet(depth, classes)


def cifar_residual_attention(depth: int, classes: int = 10) -> ResidualAttentionNet:
    """GluonCV's ``cifar_residualattentionnet{depth}`` (32x32 CIFAR-10)."""
    return ResidualAttentionNet(depth, classes, cifar=True)
