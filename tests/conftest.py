"""Shared fixtures (small compiled artifacts, built once per test session) and the test tiers.

Every test file names its tier in a module-level ``pytestmark`` (the markers are listed in
pyproject.toml); a test's own tier mark, or its class's, replaces its file's, so that a file
of integration tests can hold a unit test without that test counting as both. ``pytest -m
unit`` needs only numpy and the source tree: without the built C++ module (and so without
the rest of the stack) files with no unit test are not imported, and selecting anything but
unit tests is refused with a message that says what is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TIERS = ("unit", "cpp", "parity", "golden", "targets", "integration")


def _why_no_runtime() -> str | None:
    """Why edgecv's C++ module is not importable here, or None when it is."""
    try:  # the tests beyond the unit tier exercise the installed package, C++ module included
        from edgecv import _runtime  # noqa: F401
    except ImportError as err:
        return str(err)
    return None


NO_RUNTIME = _why_no_runtime()


def _no_runtime_message() -> str:
    return (
        f"edgecv's C++ runtime module is not importable ({NO_RUNTIME}); run `make test`, "
        "or `pytest -m unit` for the tests that need only numpy"
    )


def pytest_configure(config: pytest.Config) -> None:
    if NO_RUNTIME and not config.option.markexpr:
        raise pytest.UsageError(_no_runtime_message())


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # without the built module, a test file with no unit test is not even imported (its
    # module-level imports may need MXNet, TVM or the module)
    if NO_RUNTIME and collection_path.name.startswith("test_") and collection_path.suffix == ".py":
        return "mark.unit" not in collection_path.read_text() or None
    return None


def _tier_marks(node: pytest.Item | pytest.Collector) -> list[pytest.Mark]:
    return [m for m in node.own_markers if m.name in TIERS]


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    # before `-m` selects: each test gets its nearest tier marks (its own, its class's, its
    # file's) and the enclosing nodes lose theirs
    parents = {}
    for item in items:
        chain = item.listchain()
        nearest = next((n for n in reversed(chain) if _tier_marks(n)), None)
        if nearest is not None and nearest is not item:
            item.own_markers.extend(_tier_marks(nearest))
        parents.update((id(n), n) for n in chain[:-1])
    for node in parents.values():
        node.own_markers[:] = [m for m in node.own_markers if m.name not in TIERS]
    result = yield
    if NO_RUNTIME:
        beyond = [i.nodeid for i in items if i.get_closest_marker("unit") is None]
        if beyond:
            raise pytest.UsageError(
                _no_runtime_message() + f"; selected beyond the unit tier: {beyond[:5]}"
            )
    return result


REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = REPO / "edgecv" / "data" / "chelsea.jpg"
PARITY_SIZE = 64  # small inputs keep untuned TVM fast; every zoo model accepts 64x64

# oneDNN picks its kernels by the CPU's instruction set. Capped with ONEDNN_MAX_CPU_ISA (read
# at its first use: hence a fresh process), a machine runs the kernels an older CPU would:
# int8 without VNNI (AVX2, AVX-512 before Cascade Lake), with AVX2's VNNI, float without
# AVX-512. So the kernel tests cover these paths on any machine; where the CPU lacks an ISA,
# a higher cap is simply the CPU's own.
ISA_CAPS = ("AVX2", "AVX512_CORE", "AVX2_VNNI")
# what oneDNN may report under each cap (a lower ISA on a CPU that lacks the capped one)
ISA_UNDER_CAP = {
    "AVX2": {"avx2", "avx", "sse41"},
    "AVX512_CORE": {"avx512_core", "avx2_vnni", "avx2", "avx", "sse41"},
    "AVX2_VNNI": {"avx2_vnni", "avx2", "avx", "sse41"},
}


# The zoo sweeps (every model through parity) run in full only on request: `make sweep`
# (python -m tests.sweep) sets this, and records its result for test_tiers.py to check;
# `make sweep-missing` (--missing, --models) also names the models to limit it to
SWEEP = os.environ.get("EDGECV_SWEEP") == "1"
SWEEP_MODELS = [m for m in os.environ.get("EDGECV_SWEEP_MODELS", "").split(",") if m]
# kwargs that only scale a builder's architecture (or change its classes), not its structure
SCALE_KWARGS = {"depth", "multiplier", "dataset", "size", "config"}


# The ordinary run's classifiers: one per builder and code path, not per name group. A deeper
# or wider variant runs the same code with other numbers, and a model whose structural options
# are a subset of a representative's runs no code that one does not. Each is here because:
CI_CLASSIFIERS = {
    "resnet18_v1": "ResNet v1 builder, basic block, no SE gate",
    "se_resnet50_v1": "v1 bottleneck (strided, biased 1x1 convs) with the SE gate of dense "
    "layers (global pool, dense, sigmoid, broadcast multiply); SE-ResNet v2 calls that gate",
    "resnet18_v2": "the pre-activation v2 builder",
    "resnet18_v1b": "v1b builder: basic block, 7x7 stem, strided-conv downsample",
    "resnet50_v1d": "v1b bottleneck, deep 3x3 stem, average-pool projections (v1c and v1s/v1e "
    "turn on a subset of these, their 64-wide stem is a width; the e-ResNeXts build theirs "
    "with the same functions, zoo/layers.py)",
    "resnet50_v1b_gn": "GroupNorm (reshape to groups, global average pools, per-channel "
    "affine) in place of every BatchNorm (resnet101_v1b_gn: deeper)",
    "se_resnext50_32x4d": "ResNeXt builder: grouped 3x3 convs, the SE gate of 1x1 convs with "
    "bias (resnext50_32x4d: the same without the gate)",
    "mobilenet1.0": "depthwise-separable convolutions",
    "mobilenetv2_1.0": "inverted residuals, ReLU6",
    "mobilenetv3_large": "hard swish, SE with hard sigmoid (small: another layer table)",
    "darknet53": "leaky ReLU residual stages (YOLOv3's backbone)",
    "alexnet": "its own builder: 11x11 stride-4 stem, dropout before dense layers",
    "vgg11_bn": "VGG builder with its BatchNorm option on (vgg11..19: fewer layers of the same)",
    "squeezenet1.0": "fire modules (concatenated 1x1/3x3 expands), ceil-mode pooling",
    "googlenet": "Inception v1 modules",
    "inceptionv3": "factorised 1x7/7x1 convolutions, at 96x96",
    "densenet121": "dense blocks (concatenation), average-pool transitions",
    "shufflenet_v1": "channel shuffle (reshape, transpose), grouped 1x1 convs, units that "
    "concatenate an average pool of their input",
    "shufflenet_v2": "channel split (slices) and shuffle of two branches",
    "xception": "depthwise-separable residual blocks strided by a separable conv (xception71: "
    "more of the same blocks)",
    "cifar_resnet20_v2": "the CIFAR builders' 3x3 stem and head, 32x32 input, v2 units that "
    "project their raw input (v1: resnet18_v1's units behind the stem)",
    "cifar_wideresnet16_10": "its own builder: a stem BatchNorm with fixed affine terms "
    "before and an ordinary one after the first conv, wide v2 units",
    "cifar_resnext29_32x4d": "its own builder: ResNeXt units that project at every stage",
    "resnest14": "split attention (radix-2 grouped 3x3 conv split in two, summed, globally "
    "pooled, grouped 1x1 convs, softmax over the branches, broadcast multiply), 3x3 average "
    "after the unstrided conv of a strided unit (resnest26..269: more units, wider stems)",
    "cifar_residualattentionnet56": "attention masks: max-pool hourglasses upsampled by "
    "bilinear resizes of scale 2 (aligned corners), sigmoid, (1 + mask) x trunk; "
    "pre-activation units projecting their activated input (residualattentionnet56..452: "
    "the same modules behind resnet18_v1's stem, more of them, one more pooling level)",
}
# Builders none of CI_CLASSIFIERS uses whose layers those cover all the same: the ordinary run
# leaves them to the sweep, which records them (tests/sweep-result.json). Each is here because:
CI_COVERED_BUILDERS = {
    "edgecv.zoo.senet:senet_154": "SENet-154's grouped convs and 1x1-conv SE gates are "
    "se_resnext50_32x4d's, its average-pool projections resnet50_v1d's, its ceil-mode pool "
    "squeezenet1.0's; its 115 M parameters would cost CI minutes",
    "edgecv.zoo.dla:dla34": "DLA-34's basic blocks, max-pool downsamples and concatenating "
    "1x1 roots are resnet18_v1's and densenet121's layers; its head (global pools of every "
    "level, concatenated, dense) is theirs too",
    "edgecv.zoo.residual_attention:residual_attention": "the ImageNet Residual Attention "
    "Networks run cifar_residualattentionnet56's module code (one more pooling level) behind "
    "resnet18_v1's 7x7 stem and max pool",
}


# Structural kwargs whose layers CI models run already: the ordinary run takes no further
# representative for them (the sweep runs and records every name). Each is here because:
CI_COVERED_KWARGS = {
    "backbone": "another backbone behind the same head code is a classifier family with a "
    "CI representative of its own (deeplab_resnest*_ade: split attention as resnest14's, "
    "dilated convs, stride-1 projections and DeepLab's head as deeplab_resnet50_ade's; "
    "deeplab_resnest50_ade would cost CI 35 s)",
}


def zoo_models(task: str, ci: list[str] | None = None) -> list[str]:
    """The zoo models of ``task`` a sweep test runs: all of them under ``make sweep`` (those
    of EDGECV_SWEEP_MODELS when it names some); in the ordinary run ``ci`` when given, for
    classification CI_CLASSIFIERS (plus the first models of any builder they do not use),
    else one representative per family (the first in catalog order) and per kind of
    structural option its builder takes (YOLOv3's own anchors, ...): scaled variants of one
    builder (depth, width multiplier, dataset, SSD's backbone config: its backbones have their
    own parity tests as classifiers) share their code paths."""
    import edgecv
    from edgecv.zoo.catalog import MODELS

    names = edgecv.list_models(task=task)
    if SWEEP:
        return [n for n in names if n in SWEEP_MODELS] if SWEEP_MODELS else names
    if ci is not None:
        return ci
    seen: set[tuple[object, ...]] = set()
    chosen = []
    for name in names:
        spec = MODELS.get(name)
        key = (
            spec.family,
            spec.builder,
            frozenset(spec.kwargs.keys() - SCALE_KWARGS - CI_COVERED_KWARGS.keys()),
        )
        if key not in seen:
            seen.add(key)
            chosen.append(name)
    if task != "classification":
        return chosen
    # a builder none of CI_CLASSIFIERS uses (a new family) still gets its first models
    covered = {MODELS.get(name).builder for name in CI_CLASSIFIERS} | set(CI_COVERED_BUILDERS)
    return list(CI_CLASSIFIERS) + [n for n in chosen if MODELS.get(n).builder not in covered]


def int8_weight_bits_for(isa: str) -> int:
    """Bits of int8 weights oneDNN can multiply without 16-bit saturation on `isa`."""
    return (
        8 if isa in {"avx2_vnni", "avx512_core_vnni", "avx512_core_bf16", "avx512_core_amx"} else 7
    )


def check_isa_cap() -> str:
    """The ISA oneDNN runs with here; under a cap set by rerun_under_isa_cap, checks that the
    cap took effect."""
    from edgecv import _runtime

    isa = _runtime.kernel_isa()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if cap in ISA_UNDER_CAP:
        assert isa in ISA_UNDER_CAP[cap], (cap, isa)
    return isa


def rerun_under_isa_cap(test: str, isa: str, cwd: Path) -> None:
    """Runs ``test`` (a node id relative to tests/) in a fresh process whose oneDNN is capped
    at ``isa``; fails with its output if it fails."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(REPO / "tests" / test),
    ]
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and " passed" in r.stdout, (
        f"under {isa}:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    )


def remeasure_int8_gate(gate: dict, measure) -> dict[int, float]:
    """An x86_64 int8 artifact's gate scored 8-bit weights (where this CPU has VNNI) and 7-bit
    ones (CPUs without) and kept the worse: checks that, re-measures each width with
    ``measure()`` (the metric in points, independently of the compile) and returns them."""
    from edgecv import _runtime

    assert gate["weight_bits"] == ([8, 7] if _runtime.int8_weight_bits() == 8 else [7])
    by_bits = gate["attempts"][-1]["by_weight_bits"]
    assert gate["int8"] == min(by_bits.values())
    got = {}
    for bits in gate["weight_bits"]:
        _runtime.set_int8_weight_bits(bits)
        try:
            got[bits] = measure()
        finally:
            _runtime.set_int8_weight_bits(0)
        assert got[bits] == pytest.approx(by_bits[str(bits)], abs=1e-3)
    return got


def randomize_weights(net, seed: int = 0) -> None:
    """Give BatchNorm non-trivial statistics and affine terms so that BN bugs show."""
    rng = np.random.RandomState(seed)
    import mxnet as mx

    for name, p in net.collect_params().items():
        if name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 2.0, p.shape)))
        elif name.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.array(rng.uniform(-0.5, 0.5, p.shape)))
        elif name.endswith("gamma"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
        elif name.endswith("bias"):
            p.set_data(mx.nd.array(rng.uniform(-0.2, 0.2, p.shape)))


def calibrate_batchnorm(net, x, seed: int = 0) -> None:
    """Random BatchNorm affine terms (gamma in [0.5, 1.5], beta in [-0.5, 0.5]).

    It also runs ``x`` in training mode with momentum 0, meant to set the running statistics
    to the batch's, but MXNet 1.9 updates them only in a backward pass: they stay at 0 and 1
    (measured), so each BatchNorm acts as a random affine layer. (Real statistics from two
    64x64 images make deep nets ill-conditioned on other inputs: resnet101_v1's float32 and
    float64 outputs then differ by 2.6e-5 of the output scale, next to parity's 1e-4.)"""
    import mxnet as mx
    from mxnet.gluon import nn

    rng = np.random.RandomState(seed)
    layers = []

    def visit(block) -> None:
        if isinstance(block, nn.BatchNorm):
            layers.append(block)
        for child in block._children.values():
            visit(child)

    visit(net)
    for bn in layers:
        bn.gamma.set_data(mx.nd.array(rng.uniform(0.5, 1.5, bn.gamma.shape)))
        bn.beta.set_data(mx.nd.array(rng.uniform(-0.5, 0.5, bn.beta.shape)))
        bn._kwargs["momentum"] = 0.0  # running stats := this batch's stats
    with mx.autograd.train_mode():
        net(x)
    for bn in layers:
        bn._kwargs["momentum"] = 0.9


def scale_last_layer(net, last, x, spread: float = 3.0) -> None:
    """Scale the weights and bias of ``net``'s layer ``last`` so that the outputs on ``x``
    have a standard deviation of ``spread``."""
    factor = spread / max(float(net(x).asnumpy().std()), 1e-6)
    last.weight.set_data(last.weight.data() * factor)
    if last.bias is not None:
        last.bias.set_data(last.bias.data() * factor)


def normalise_gates(net, x) -> int:
    """Scale the two layers of every squeeze-and-excitation gate (a block's ``se``) and of
    every split-attention gate (ResNeSt's ``fc1``, ``fc2``) and attention mask head (the
    Residual Attention Networks' two 1x1 convs before the sigmoid, on whole maps) so that their
    outputs on ``x`` have unit standard deviation, in network order (data-dependent initialisation, as LSUV:
    Mishkin & Matas 2016); returns the number of gates.

    A trained gate's pre-activations are of order one. Random ones are not: fed by the
    growing residual stream they are small differences of large sums, and a gate that
    multiplies its own input makes deep SE nets chaotic: in se_resnet101_v1 a 1e-6 change of
    the input moves the logits by 30% of their scale, and MXNet's float32 and float64
    outputs differ as much (as ONNX Runtime's and MXNet's do, block by block). With unit
    gates they agree to 1.5e-6 (se_resnet101_v1, se_resnet152_v2, se_resnext101_64x4d)."""
    import mxnet as mx
    from mxnet.gluon import nn

    from edgecv.zoo.residual_attention import AttentionModule
    from edgecv.zoo.resnest import SplitAttentionConv

    gates = []

    def visit(block) -> None:
        if isinstance(getattr(block, "se", None), nn.HybridSequential):
            gates.append((block.se[0], block.se[2]))
        if isinstance(block, SplitAttentionConv):
            gates.append((block.fc1, block.fc2))
        if isinstance(block, AttentionModule):  # the sigmoid mask head's two 1x1 convs
            head = getattr(block, f"softmax{max(2 * block.levels, 2)}_blocks")
            gates.append((head[2], head[5]))
        for child in block._children.values():
            visit(child)

    def unit_output(layer, inputs) -> None:  # Dense or (grouped) 1x1 Conv2D on (N, C[, 1, 1])
        grouped = isinstance(layer, nn.Conv2D) and layer._kwargs["num_group"] > 1
        if grouped or inputs[0].shape[2:] not in ((), (1, 1)):  # (a mask head's: spatial)
            bias = layer.bias.data() if layer.bias is not None else None
            y = mx.nd.Convolution(inputs[0], layer.weight.data(), bias, **layer._kwargs)
            y = y.asnumpy().astype(np.float64)
        else:
            a = inputs[0].asnumpy().reshape(inputs[0].shape[0], -1).astype(np.float64)
            y = a @ layer.weight.data().asnumpy().reshape(layer.weight.shape[0], -1).T
            if layer.bias is not None:
                y = y + layer.bias.data().asnumpy()
        factor = 1.0 / max(float(y.std()), 1e-12)
        layer.weight.set_data(layer.weight.data() * factor)
        if layer.bias is not None:
            layer.bias.set_data(layer.bias.data() * factor)

    visit(net)
    if not gates:
        return 0
    hooks = [layer.register_forward_pre_hook(unit_output) for gate in gates for layer in gate]
    net(x)  # each gate scaled before it runs, so later ones see the scaled earlier ones
    for hook in hooks:
        hook.detach()
    return len(gates)


def random_params_file(model: str, directory: Path, seed: int = 0, size: int = PARITY_SIZE) -> Path:
    """A .params file of ``model`` with random weights and BatchNorm affine terms,
    squeeze-and-excitation gates scaled to unit pre-activations and logits scaled to a few
    units on a random batch of ``size`` x ``size`` inputs (what a trained file looks like:
    well-scaled logits, not saturated ones)."""
    import mxnet as mx

    import edgecv

    net = edgecv.get_model(model)
    x = mx.nd.array(np.random.RandomState(seed).uniform(-2, 2, (2, 3, size, size)))
    net(x)  # materialise deferred shapes
    calibrate_batchnorm(net, x, seed)
    normalise_gates(net, x)
    # residual sums grow with depth: bring the logits to a scale of a few units, so that the
    # softmax keeps distinct probabilities for the top classes
    last = getattr(net, "fc", None) or net.output
    if isinstance(last, mx.gluon.nn.HybridSequential):
        last = last[0]
    scale_last_layer(net, last, x)
    path = directory / f"{model}.params"
    net.save_parameters(str(path))
    return path


@pytest.fixture()
def seeded_mxnet():
    """Random initialisation depends on MXNet's global RNG: seed it per test, so that a
    test's weights do not depend on which tests ran before it."""
    import mxnet as mx

    mx.random.seed(1234)


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory) -> Path:
    """resnet18_v1 at 64x64 with randomised weights, compiled for x86_64."""
    from edgecv.compile import CompileOptions, compile_model

    tmp = tmp_path_factory.mktemp("small")
    params = random_params_file("resnet18_v1", tmp)
    return compile_model(
        CompileOptions(
            model="resnet18_v1",
            input_size=PARITY_SIZE,
            pretrained=str(params),
            out_dir=str(tmp / "art"),
        )
    )


@pytest.fixture(scope="session")
def yolo_artifact(tmp_path_factory) -> Path:
    """yolo3_mobilenet0.25_voc at 256x256 with its random initial weights, compiled for
    x86_64: the detector of the tests that need a detection artifact but no reference."""
    from edgecv.compile import CompileOptions, compile_model

    tmp = tmp_path_factory.mktemp("yolo")
    return compile_model(
        CompileOptions(model="yolo3_mobilenet0.25_voc", input_size=256, out_dir=str(tmp / "a"))
    )


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """A small digits dataset (all layouts), generated once per session."""
    from edgecv.datasets.digits import generate

    return generate(
        tmp_path_factory.mktemp("digits") / "d", seed=3, train_per_scan=1, scenes=(48, 16)
    )
