"""Deep Layer Aggregation (Yu et al. 2018): GluonCV's DLA-34 ImageNet classifier (``dla34``)
and CenterNet's DLA-34 backbone, with its iterative deep aggregation (IDA) upsampling to a
quarter of the input, GluonCV layout.

DLA-34: a 7x7 stem, two conv levels (strides 1, 2), then four aggregation trees (strides 4,
8, 16, 32; 64, 128, 256, 512 channels) of residual basic blocks whose outputs a 1x1 "root"
conv merges; trees from level 3 on also feed their downsampled input to the root. The
upsampling merges the levels from the deepest up: each step projects a level (3x3 conv,
BN, ReLU), upsamples it with a per-channel (grouped) transposed conv, adds the level above
and mixes the sum (3x3 conv, BN, ReLU). Attribute trees as GluonCV's (``base`` with
``base_layer``, ``level0..5`` of ``tree1``/``tree2``/``root``/``project``/``downsample``;
``dla_up.idas``, ``ida_up`` with ``projs``/``ups``/``nodes``), so its parameter files load.
"""

from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

LEVELS = (1, 1, 1, 2, 2, 1)  # DLA-34: convs of levels 0-1, tree depths of levels 2-5
CHANNELS = (16, 32, 64, 128, 256, 512)
FIRST_LEVEL = 2  # the upsampled output has level 2's stride, 4


def _conv_bn(channels: int, kernel: int, stride: int = 1) -> list[HybridBlock]:
    return [
        nn.Conv2D(channels, kernel, stride, kernel // 2, use_bias=False),
        nn.BatchNorm(momentum=0.9),
    ]


class _BasicBlock(HybridBlock):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut); the shortcut is x unless given."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        with self.name_scope():
            self.conv1, self.bn1 = _conv_bn(channels, 3, stride)
            self.conv2, self.bn2 = _conv_bn(channels, 3)

    def hybrid_forward(self, F, x, shortcut=None):  # noqa: N803
        out = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        out = self.bn2(self.conv2(out))
        return F.Activation(out + (x if shortcut is None else shortcut), act_type="relu")


class _Root(HybridBlock):
    """relu(bn(1x1 conv of the concatenated inputs))."""

    def __init__(self, channels: int):
        super().__init__()
        with self.name_scope():
            self.conv, self.bn = _conv_bn(channels, 1)

    def hybrid_forward(self, F, *inputs):  # noqa: N803
        return F.Activation(self.bn(self.conv(F.concat(*inputs, dim=1))), act_type="relu")


class _Tree(HybridBlock):
    """An aggregation tree of ``depth`` levels. A depth-1 tree is two blocks and a root
    over (second block, first block, what the enclosing trees pass down); a deeper one is
    two subtrees, the second taking the first's output to its root. ``keeps_input``: the
    root also takes this tree's (downsampled) input."""

    def __init__(self, depth: int, channels: int, stride: int, keeps_input: bool, in_channels: int):
        super().__init__()
        self.depth, self.keeps_input = depth, keeps_input
        with self.name_scope():
            self.downsample = nn.HybridSequential(prefix="")
            self.project = nn.HybridSequential(prefix="")
            if stride > 1:
                self.downsample.add(nn.MaxPool2D(stride, stride))
            if depth == 1:
                self.tree1 = _BasicBlock(channels, stride)
                self.tree2 = _BasicBlock(channels, 1)
                if in_channels != channels:
                    self.project.add(*_conv_bn(channels, 1))
                self.root = _Root(channels)
            else:
                self.tree1 = _Tree(depth - 1, channels, stride, False, in_channels)
                self.tree2 = _Tree(depth - 1, channels, 1, False, channels)

    def hybrid_forward(self, F, x, passed=None):  # noqa: N803
        below = list(passed or [])
        bottom = self.downsample(x) if len(self.downsample) else x
        if self.keeps_input:
            below.append(bottom)
        if self.depth == 1:
            first = self.tree1(x, self.project(bottom) if len(self.project) else bottom)
            return self.root(self.tree2(first), first, *below)
        first = self.tree1(x)
        return self.tree2(first, [*below, first])


class DLA(HybridBlock):
    """The six levels' outputs (strides 1 to 32), as a list."""

    def __init__(self, levels: tuple[int, ...] = LEVELS, channels: tuple[int, ...] = CHANNELS):
        super().__init__()
        with self.name_scope():
            self.base_layer = nn.HybridSequential(prefix="")
            self.base_layer.add(
                nn.Conv2D(channels[0], 7, 1, 3, use_bias=False),
                nn.BatchNorm(momentum=0.9),
                nn.Activation("relu"),
            )
            in_channels = channels[0]
            for level in range(6):
                if level < 2:
                    block = nn.HybridSequential(prefix="")
                    for i in range(levels[level]):
                        stride = 2 if level == 1 and i == 0 else 1
                        block.add(*_conv_bn(channels[level], 3, stride), nn.Activation("relu"))
                else:
                    block = _Tree(levels[level], channels[level], 2, level > 2, in_channels)
                setattr(self, f"level{level}", block)
                in_channels = channels[level]

    def hybrid_forward(self, F, x):  # noqa: N803
        outputs = []
        x = self.base_layer(x)
        for level in range(6):
            x = getattr(self, f"level{level}")(x)
            outputs.append(x)
        return outputs


class DLAClassifier(DLA):
    """GluonCV's ``dla34``: every level's output averaged globally, the six concatenated
    (16 + 32 + ... + 512 = 1008 values) and one dense layer (``fc``) to class scores. (The
    DLA paper classifies from the last level alone; GluonCV's weights need all six.)"""

    def __init__(self, classes: int = 1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.global_avg_pool = nn.GlobalAvgPool2D()
            self.fc = nn.Dense(classes)

    def hybrid_forward(self, F, x):  # noqa: N803
        pooled = [F.flatten(self.global_avg_pool(level)) for level in super().hybrid_forward(F, x)]
        return self.fc(F.concat(*pooled, dim=1))


def dla34(classes: int = 1000) -> DLAClassifier:
    """DLA-34 (levels 1, 1, 1, 2, 2, 1; 16 to 512 channels) as an ImageNet classifier."""
    return DLAClassifier(classes)


class _ConvBnRelu(HybridBlock):
    """3x3 conv (with bias), then ``actf``: BN and ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        with self.name_scope():
            self.conv = nn.Conv2D(channels, 3, 1, 1)
            self.actf = nn.HybridSequential(prefix="")
            self.actf.add(nn.BatchNorm(momentum=0.9), nn.Activation("relu"))

    def hybrid_forward(self, F, x):  # noqa: N803
        return self.actf(self.conv(x))


class _IDAUp(HybridBlock):
    """Merges maps[1:] one by one into maps[0]'s resolution: map i is projected to
    ``channels``, upsampled by ``factors[i]`` and mixed with the merged map before it."""

    def __init__(self, channels: int, factors: list[int]):
        super().__init__()
        with self.name_scope():
            self.projs = nn.HybridSequential(prefix="")
            self.ups = nn.HybridSequential(prefix="")
            self.nodes = nn.HybridSequential(prefix="")
            for f in factors[1:]:
                self.projs.add(_ConvBnRelu(channels))
                # (a grouped transposed conv cannot defer its input channels in MXNet)
                self.ups.add(
                    nn.Conv2DTranspose(
                        channels,
                        2 * f,
                        f,
                        f // 2,
                        groups=channels,
                        use_bias=False,
                        in_channels=channels,
                    )
                )
                self.nodes.add(_ConvBnRelu(channels))

    def merge(self, maps: list) -> list:
        """``maps`` with maps[1:] replaced by the merged ones (the last is the result)."""
        out = [maps[0]]
        for i in range(1, len(maps)):
            up = self.ups[i - 1](self.projs[i - 1](maps[i]))
            out.append(self.nodes[i - 1](up + out[-1]))
        return out

    def hybrid_forward(self, F, *maps):  # noqa: N803
        return self.merge(list(maps))[-1]


class _DLAUp(HybridBlock):
    """Step s merges the deepest s + 2 levels into the resolution of the level at -(s + 2),
    the deeper ones as merged by the step before (each now one level up). Returns each
    step's result, shallowest first, then the deepest level as it came."""

    def __init__(self, channels: list[int]):
        super().__init__()
        with self.name_scope():
            self.idas = nn.HybridSequential(prefix="ida")
            for step in range(len(channels) - 1):
                self.idas.add(_IDAUp(channels[-step - 2], [1] + [2] * (step + 1)))

    def hybrid_forward(self, F, *levels):  # noqa: N803
        levels = list(levels)
        merged = [levels[-1]]
        for step, ida in enumerate(self.idas):
            start = len(levels) - step - 2
            levels = levels[:start] + ida.merge(levels[start:])
            merged.insert(0, levels[-1])
        return merged


class DeconvDLA(HybridBlock):
    """DLA-34 (``base``) upsampled to stride 4 (``dla_up``, then ``ida_up`` over the three
    shallowest merged maps): 64 channels."""

    def __init__(self):
        super().__init__()
        channels = list(CHANNELS[FIRST_LEVEL:])  # 64, 128, 256, 512 at strides 4 to 32
        with self.name_scope():
            self.base = DLA()
            self.dla_up = _DLAUp(channels)
            self.ida_up = _IDAUp(channels[0], [1, 2, 4])

    def hybrid_forward(self, F, x):  # noqa: N803
        merged = self.dla_up(*self.base(x)[FIRST_LEVEL:])
        return self.ida_up(*merged[:3])
