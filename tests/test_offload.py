"""Kernel-library offload (oneDNN): the rewrite of the TVM graph and the C++ kernels.

Reference: ONNX Runtime on the same ONNX graph. Graphs are built with onnx.helper so that
each case the rewrite handles (BN folding, grouped and dilated convs, asymmetric padding,
every activation, residual before and after the activation, NCHW graph input and output,
dense) is present and the result would differ if it were folded wrongly.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.compile import (
    CompileOptions,
    compile_model,
    kernel_abi,
    kernel_calls,
    layer_plan,
    local_kernel_libraries,
    offload,
    tvm_api,
)
from edgecv.errors import ArtifactError
from edgecv.runtime import Predictor

from conftest import check_isa_cap, random_params_file, rerun_under_isa_cap

pytestmark = [
    pytest.mark.parity,
    pytest.mark.skipif(
        "dnnl" not in local_kernel_libraries(), reason="runtime built without oneDNN"
    ),
]
LIBRARIES = [
    pytest.param(
        lib,
        marks=pytest.mark.skipif(
            lib not in local_kernel_libraries(), reason=f"runtime built without {lib}"
        ),
    )
    for lib in ("dnnl", "xnnpack")
]
RTOL = 1e-4  # of the output scale


class _Graph:
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.RandomState(seed)
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def const(self, a: np.ndarray) -> str:
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(a, dtype=np.float32), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(
        self, x: str, cin: int, cout: int, k: int, group: int = 1, bias: bool = True, **attrs
    ) -> str:
        w = self.const(
            self.rng.uniform(-1, 1, (cout, cin // group, k, k)) / np.sqrt(cin * k * k / group)
        )
        inputs = [x, w] + ([self.const(self.rng.uniform(-0.5, 0.5, cout))] if bias else [])
        return self.op("Conv", inputs, kernel_shape=[k, k], group=group, **attrs)

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        return self.op(
            "BatchNormalization",
            [
                x,
                self.const(r.uniform(0.5, 1.5, c)),
                self.const(r.uniform(-0.5, 0.5, c)),
                self.const(r.uniform(-0.5, 0.5, c)),
                self.const(r.uniform(0.5, 2.0, c)),
            ],
            epsilon=1e-5,
        )

    def model(self, inputs: list, outputs: list) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "g", inputs, outputs, self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _model() -> onnx.ModelProto:
    g = _Graph()
    x = "data"
    a = g.op(
        "LeakyRelu", [g.bn(g.conv(x, 8, 16, 3, strides=[2, 2], pads=[1, 0, 2, 1]), 16)], alpha=0.1
    )
    b = g.op(  # depthwise, dilated, ReLU6 as Clip with bound inputs
        "Clip",
        [
            g.bn(
                g.conv(a, 16, 16, 3, group=16, bias=False, dilations=[2, 2], pads=[2, 2, 2, 2]), 16
            ),
            g.const(np.float32(0.0)),
            g.const(np.float32(6.0)),
        ],
    )
    c = g.op(
        "Relu", [g.op("Add", [g.bn(g.conv(b, 16, 16, 1, bias=False), 16), a])]
    )  # add, then ReLU
    d = g.op(
        "Add", [g.op("LeakyRelu", [g.conv(c, 16, 16, 3, pads=[1, 1, 1, 1])], alpha=0.2), c]
    )  # ReLU, then add
    up = g.op("Resize", [d, "", g.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    cat = g.op("Concat", [up, g.conv(up, 16, 8, 3, pads=[1, 1, 1, 1])], axis=1)
    head = g.conv(cat, 24, 6, 1)  # a graph output written by the conv in NCHW
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [d])])
    w = g.const(g.rng.uniform(-1, 1, (10, 16)))
    dense = g.op(
        "Relu", [g.op("Gemm", [pooled, w, g.const(g.rng.uniform(-0.5, 0.5, 10))], transB=1)]
    )
    f32 = TensorProto.FLOAT
    return g.model(
        [helper.make_tensor_value_info("data", f32, [1, 8, 21, 19])],
        [
            helper.make_tensor_value_info(head, f32, None),
            helper.make_tensor_value_info(dense, f32, None),
        ],
    )


def _op_names(mod) -> list[str]:
    from tvm import relax

    names = []
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Call):
                names.append(str(getattr(v.op, "name", "")) or str(v.args[0]))
    return names


@pytest.mark.parametrize("library", LIBRARIES)
def test_offloaded_graph_matches_onnxruntime(tmp_path, library):
    model = _model()
    x = np.random.RandomState(1).uniform(-2, 2, (1, 8, 21, 19)).astype(np.float32)
    expected = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {"data": x})
    mod, params = tvm_api.import_onnx(model, embed_params=True)
    assert params == []
    mod, stats = tvm_api.offload_kernels(mod, library)
    # every conv and the dense layer left TVM, with BN, bias, activations and adds folded in
    assert stats["conv2d"] == 6 and stats["dense"] == 1, stats
    names = _op_names(mod)
    for op in (
        "relax.nn.conv2d",
        "relax.matmul",
        "relax.nn.batch_norm",
        "relax.nn.leakyrelu",
        "relax.nn.prelu",
        "relax.nn.relu",
        "relax.maximum",
        "relax.minimum",
    ):
        assert op not in names, f"{op} left in the TVM graph: {names}"
    assert names.count("relax.call_dps_packed") == 7
    # only the NHWC↔NCHW transposes that cannot be avoided: none at the input or the head
    assert names.count("relax.permute_dims") <= 1, names
    assert all(
        str(b.value.args[0].global_symbol).startswith(f"edgecv.{library}.")
        for block in mod["main"].body.blocks
        for b in block.bindings
        if getattr(b.value, "op", None) is not None
        and str(getattr(b.value.op, "name", "")) == "relax.call_dps_packed"
    )
    tvm_api.build(mod, {"kind": "llvm"}, tmp_path / "m.so")
    from edgecv import _runtime

    _runtime.kernel_stats(reset=True)
    got = tvm_api.run(tmp_path / "m.so", [x], [])
    calls = _runtime.kernel_stats(reset=True)
    assert calls[f"edgecv.{library}.conv2d"]["calls"] == 6, calls
    assert calls[f"edgecv.{library}.dense"]["calls"] == 1, calls
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        scale = float(np.abs(e).max())
        assert scale > 0.1
        assert float(np.abs(g - e).max()) <= RTOL * scale


def _deconv(
    g: _Graph, x: str, cin: int, cout: int, k: int, group: int = 1, bias: bool = True, **attrs
) -> str:
    w = g.const(g.rng.uniform(-1, 1, (cin, cout // group, k, k)) / np.sqrt(cin * k * k / group))
    inputs = [x, w] + ([g.const(g.rng.uniform(-0.5, 0.5, cout))] if bias else [])
    return g.op("ConvTranspose", inputs, kernel_shape=[k, k], group=group, **attrs)


@pytest.mark.parametrize("library", LIBRARIES)
def test_offloaded_transposed_convs_match_onnxruntime(tmp_path, library):
    """SimplePose's upsampling head (4×4, stride 2, pad 1, no bias, BN, ReLU) and the other
    cases the folding must get right: groups, output padding, asymmetric pads, a transposed
    conv reading the NCHW graph input and one writing the NCHW graph output."""
    g = _Graph(seed=4)
    a = _deconv(g, "data", 6, 8, 3, strides=[1, 1], pads=[1, 1, 1, 1])  # reads the graph input
    b = g.op(
        "Relu", [g.bn(_deconv(g, a, 8, 8, 4, bias=False, strides=[2, 2], pads=[1, 1, 1, 1]), 8)]
    )
    c = g.op(
        "LeakyRelu",
        [
            _deconv(
                g, b, 8, 12, 3, group=2, strides=[2, 2], pads=[1, 0, 1, 1], output_padding=[1, 0]
            )
        ],
        alpha=0.1,
    )
    head = _deconv(
        g, g.conv(c, 12, 12, 3, pads=[1, 1, 1, 1]), 12, 5, 2, strides=[2, 2]
    )  # NCHW output
    f32 = TensorProto.FLOAT
    model = g.model(
        [helper.make_tensor_value_info("data", f32, [1, 6, 5, 7])],
        [helper.make_tensor_value_info(head, f32, None)],
    )
    x = np.random.RandomState(2).uniform(-2, 2, (1, 6, 5, 7)).astype(np.float32)
    expected = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {"data": x})[0]
    mod, _ = tvm_api.import_onnx(model, embed_params=True)
    mod, stats = tvm_api.offload_kernels(mod, library)
    assert stats["conv2d_transpose"] == 4 and stats["conv2d"] == 1, stats
    names = _op_names(mod)
    for op in (
        "relax.nn.conv2d_transpose",
        "relax.nn.relu",
        "relax.nn.leakyrelu",
        "relax.multiply",
    ):
        assert op not in names, f"{op} left in the TVM graph: {names}"
    assert "relax.permute_dims" not in names, names
    tvm_api.build(mod, {"kind": "llvm"}, tmp_path / "m.so")
    from edgecv import _runtime

    _runtime.clear_kernel_cache()
    _runtime.kernel_layers(reset=True)
    _runtime.kernel_stats(reset=True)
    got = tvm_api.run(tmp_path / "m.so", [x], [])[0]
    assert _runtime.kernel_stats()[f"edgecv.{library}.conv2d_transpose"]["calls"] == 4
    deconvs = [
        layer["implementation"]
        for layer in _runtime.kernel_layers()
        if layer["kernel"] == f"edgecv.{library}.conv2d_transpose"
    ]
    if library == "dnnl":
        # the 4x4 stride-2 layer runs as four 2x2 convolutions (one per output phase), the
        # others as oneDNN transposed convolutions; none on a reference kernel
        assert sum("(sub-pixel)" in i for i in deconvs) == 4 and len(deconvs) == 7, deconvs
        assert not any(impl.startswith("ref") for impl in deconvs), deconvs
    assert got.shape == expected.shape == (1, 5, 40, 56)
    scale = float(np.abs(expected).max())
    assert scale > 0.1
    assert float(np.abs(got - expected).max()) <= RTOL * scale


def _winograd_model() -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """3×3 stride-1 convs where oneDNN's Winograd kernels apply: residual added before and
    after the activation, leaky ReLU, ReLU6, channels that fill the 16-channel blocks
    partly (24), a stride-2 conv (direct) between them, and a map too small for Winograd."""
    g = _Graph(seed=7)
    a = g.op("Relu", [g.bn(g.conv("data", 3, 32, 3, pads=[1, 1, 1, 1]), 32)])  # NCHW input
    b = g.op(  # add, then ReLU: a ResNet block's end
        "Relu", [g.op("Add", [g.bn(g.conv(a, 32, 32, 3, bias=False, pads=[1, 1, 1, 1]), 32), a])]
    )
    c = g.op(  # leaky ReLU, then add: Darknet's
        "Add", [g.op("LeakyRelu", [g.conv(b, 32, 32, 3, pads=[1, 1, 1, 1])], alpha=0.1), b]
    )
    d = g.op(
        "Clip",
        [g.conv(c, 32, 24, 3, pads=[1, 1, 1, 1]), g.const(np.float32(0)), g.const(np.float32(6))],
    )
    e = g.conv(d, 24, 32, 3, strides=[2, 2], pads=[1, 1, 1, 1])  # 12x10 -> 6x5: direct
    f = g.op("Relu", [g.conv(e, 32, 16, 3, pads=[1, 1, 1, 1])])  # 6x5 = 30 pixels: direct
    head = g.conv(g.op("Relu", [g.conv(d, 24, 16, 3, pads=[1, 1, 1, 1])]), 16, 5, 1)
    f32 = TensorProto.FLOAT
    model = g.model(
        [helper.make_tensor_value_info("data", f32, [1, 3, 24, 20])],
        [
            helper.make_tensor_value_info(head, f32, None),
            helper.make_tensor_value_info(f, f32, None),
        ],
    )
    return model, (1, 3, 24, 20)


def _reference_and_offloaded(model: onnx.ModelProto, x: np.ndarray):
    """ONNX Runtime's outputs for ``x``, and the model imported and offloaded to oneDNN."""
    expected = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {"data": x})
    mod, _ = tvm_api.import_onnx(model, embed_params=True)
    mod, stats = tvm_api.offload_kernels(mod, "dnnl")
    return expected, mod, stats


def _assert_matches(got: list, expected: list) -> None:
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        scale = float(np.abs(e).max())
        assert scale > 0.1
        assert float(np.abs(g - e).max()) <= RTOL * scale


@pytest.mark.parametrize("isa", ["native", "AVX2"])
def test_winograd_convs_match_onnxruntime(tmp_path, isa):
    """Float 3×3 stride-1 convs run as Winograd F(4x4/2x2, 3x3): oneDNN's, in its blocked
    layout (the activation and residual applied while converting back to NHWC), where the CPU
    has AVX-512 (oneDNN 2.6 has Winograd kernels for it only); edgecv's own F(4x4, 3x3)
    (winograd.h: transforms around oneDNN's batched matmul) elsewhere, checked in a fresh
    process with oneDNN capped at AVX2. The same results as ONNX Runtime's direct convolution
    to within the usual tolerance."""
    if isa != "native":
        rerun_under_isa_cap(
            "test_offload.py::test_winograd_convs_match_onnxruntime[native]", isa, tmp_path
        )
        return
    winograd_isa = check_isa_cap().startswith("avx512")
    model, shape = _winograd_model()
    x = np.random.RandomState(5).uniform(-2, 2, shape).astype(np.float32)
    expected, mod, stats = _reference_and_offloaded(model, x)
    assert stats["conv2d"] == 8, stats
    tvm_api.build(mod, {"kind": "llvm"}, tmp_path / "m.so")
    from edgecv import _runtime

    _runtime.clear_kernel_cache()
    _runtime.kernel_layers(reset=True)
    got = tvm_api.run(tmp_path / "m.so", [x], [])
    impls = [layer["implementation"] for layer in _runtime.kernel_layers()]
    # the four 3x3 stride-1 convs on the 24x20 map, not the NCHW input's, the stride-2 one,
    # the one on 30 pixels or the 1x1 head
    wino = [i for i in impls if "(winograd)" in i]
    assert len(wino) == 4, impls
    # oneDNN's own Winograd kernels where it has them (AVX-512), edgecv's elsewhere
    assert all(i.startswith("edgecv") != winograd_isa for i in wino), impls
    _assert_matches(got, expected)


def test_pooling_runs_in_onednn_and_matches_onnxruntime(tmp_path):
    """Max and average pooling between offloaded convs run as oneDNN pooling in NHWC:
    padding, ceil mode (extra bottom/right cells, max only), average with and without the
    padding counted. Average pooling that ceil mode would extend stays TVM code."""
    g = _Graph(seed=3)
    a = g.op("Relu", [g.conv("data", 3, 16, 3, pads=[1, 1, 1, 1])])
    m1 = g.op("MaxPool", [a], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c1 = g.conv(m1, 16, 16, 1)  # 12 x 11: ceil mode adds a column
    m2 = g.op("MaxPool", [c1], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    b = g.conv(m2, 16, 16, 3, pads=[1, 1, 1, 1])
    p1 = g.op("AveragePool", [b], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    p2 = g.op(
        "AveragePool",
        [b],
        kernel_shape=[3, 3],
        strides=[1, 1],
        pads=[1, 1, 1, 1],
        count_include_pad=1,
    )
    p3 = g.op("AveragePool", [c1], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)  # TVM
    out = [g.conv(p, 16, 4, 1) for p in (p1, p2, p3)]
    f32 = TensorProto.FLOAT
    model = g.model(
        [helper.make_tensor_value_info("data", f32, [1, 3, 23, 21])],
        [helper.make_tensor_value_info(o, f32, None) for o in out],
    )
    x = np.random.RandomState(2).uniform(-2, 2, (1, 3, 23, 21)).astype(np.float32)
    expected, mod, stats = _reference_and_offloaded(model, x)
    assert stats["pool2d"] == 4, stats
    assert _op_names(mod).count("relax.nn.avg_pool2d") == 1
    tvm_api.build(mod, {"kind": "llvm"}, tmp_path / "m.so")
    _assert_matches(tvm_api.run(tmp_path / "m.so", [x], []), expected)


def test_winograd_can_be_turned_off(tmp_path):
    """EDGECV_DNNL_WINOGRAD=0: every conv on oneDNN's direct kernels (read once per process,
    so checked in a fresh one)."""
    import subprocess
    import sys

    model, _ = _winograd_model()
    mod, _ = tvm_api.import_onnx(model, embed_params=True)
    mod, _ = tvm_api.offload_kernels(mod, "dnnl")
    tvm_api.build(mod, {"kind": "llvm"}, tmp_path / "m.so")
    script = (
        "import numpy as np\n"
        "from edgecv import _runtime\n"
        "from edgecv.compile import tvm_api\n"
        f"tvm_api.run({str(tmp_path / 'm.so')!r}, [np.ones((1, 3, 24, 20), np.float32)], [])\n"
        "print('|'.join(l['implementation'] for l in _runtime.kernel_layers()))\n"
    )
    import os

    env = dict(os.environ, EDGECV_DNNL_WINOGRAD="0")
    # run outside the source tree: `python -c` puts the working directory first on the path,
    # and the repository's edgecv/ has no built runtime module
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip().splitlines()[-1]
    impls = out.split("|")
    assert len(impls) == 8 and not any("winograd" in i for i in impls), impls


def test_kernels_reject_bad_tensors():
    """Called with tensors that do not fit the layer: an error naming it, not a crash."""
    import tvm

    conv = tvm.get_global_func("edgecv.dnnl.conv2d")
    t = lambda *s: tvm.runtime.tensor(np.zeros(s, np.float32))  # noqa: E731
    conv1x1 = kernel_abi.Conv2d(1, 1, 0, 0, 0, 0, 1, 1, 1)
    settings = tvm.runtime.ShapeTuple(kernel_abi.encode(conv1x1, key=7))
    good = [t(1, 4, 4, 3), t(1, 8, 3, 1, 1), t(8)]
    conv(*good, settings, t(1, 4, 4, 8))  # fits: runs
    with pytest.raises(ValueError, match="shapes do not agree"):
        conv(good[0], good[1], t(5), settings, t(1, 4, 4, 8))  # bias of 5 for 8 channels
    with pytest.raises(TypeError, match="float32"):
        conv(
            tvm.runtime.tensor(np.zeros((1, 4, 4, 3), np.int32)), *good[1:], settings, t(1, 4, 4, 8)
        )
    with pytest.raises(ValueError, match="another edgecv version"):
        conv(*good, tvm.runtime.ShapeTuple([9, 1]), t(1, 4, 4, 8))


def test_pooling_kernel_rejects_bad_calls():
    """The pooling kernel, given an output of the wrong size or a quantised input for an
    average: an error naming it, not a crash."""
    import tvm

    pool = tvm.get_global_func("edgecv.dnnl.pool2d")
    t = lambda *s, dtype=np.float32: tvm.runtime.tensor(np.zeros(s, dtype))  # noqa: E731

    def settings(kind):  # 3x3 window, stride 2, padding 1 all round
        record = kernel_abi.Pool2d(kind, 3, 3, 2, 2, 1, 1, 1, 1)
        return tvm.runtime.ShapeTuple(kernel_abi.encode(record, key=9))

    pool(t(1, 8, 8, 4), settings(0), t(1, 4, 4, 4))  # fits: runs
    pool(t(1, 8, 8, 4, dtype=np.uint8), settings(0), t(1, 4, 4, 4, dtype=np.uint8))
    with pytest.raises(ValueError, match="pooling window"):
        pool(t(1, 8, 8, 4), settings(0), t(1, 5, 4, 4))
    with pytest.raises(ValueError, match="pooling window"):
        pool(t(1, 8, 8, 4), settings(0), t(1, 4, 4, 3))  # channels differ
    with pytest.raises(TypeError, match="only max pooling"):
        pool(t(1, 8, 8, 4, dtype=np.uint8), settings(1), t(1, 4, 4, 4, dtype=np.uint8))
    with pytest.raises(ValueError, match="unknown pooling kind"):
        pool(t(1, 8, 8, 4), settings(7), t(1, 4, 4, 4))


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory):
    """mobilenetv2_0.25 (depthwise convs, ReLU6) compiled with oneDNN and with TVM alone."""
    tmp = tmp_path_factory.mktemp("ways")
    params = random_params_file("mobilenetv2_0.25", tmp)  # the same weights both ways
    arts = {}
    for kernels in ("dnnl", "tvm"):
        arts[kernels] = compile_model(
            CompileOptions(
                model="mobilenetv2_0.25",
                input_size=64,
                kernels=kernels,
                pretrained=str(params),
                out_dir=str(tmp / kernels),
            )
        )
    return arts


def test_artifacts_built_each_way_agree(both_ways):
    from edgecv.artifact import read_manifest

    dnnl, plain = read_manifest(both_ways["dnnl"]), read_manifest(both_ways["tvm"])
    assert dnnl["kernels"] == ["dnnl"] and plain["kernels"] == []
    convs = sum(
        n.op_type == "Conv" for n in onnx.load(str(both_ways["dnnl"] / "model.onnx")).graph.node
    )
    assert dnnl["report"]["offloaded"]["conv2d"] == convs > 50 and dnnl["params"] == []
    x = np.random.RandomState(3).uniform(-2, 2, (1, 3, 64, 64)).astype(np.float32)
    from edgecv import _runtime

    _runtime.kernel_stats(reset=True)
    a = Predictor(both_ways["dnnl"]).run_tensor(x).outputs[0]
    calls = _runtime.kernel_stats(reset=True)  # what the benchmark's time split reads
    assert (
        calls["edgecv.dnnl.conv2d"]["calls"] == convs
        and calls["edgecv.dnnl.conv2d"]["total_ms"] > 0
    )
    b = Predictor(both_ways["tvm"]).run_tensor(x).outputs[0]
    ref = ort.InferenceSession(str(both_ways["tvm"] / "model.onnx")).run(None, {"data": x})[0]
    scale = float(np.abs(ref).max())
    assert scale > 0.1
    assert float(np.abs(a - ref).max()) <= RTOL * scale
    assert float(np.abs(b - ref).max()) <= RTOL * scale
    assert np.argmax(a) == np.argmax(b) == np.argmax(ref)


def test_runtime_without_the_library_refuses_clearly(both_ways, tmp_path):
    from edgecv.artifact import read_manifest, seal_manifest

    bad = tmp_path / "bad"
    shutil.copytree(both_ways["dnnl"], bad)
    doc = read_manifest(bad)
    doc.pop("manifest_sha256")
    doc["kernels"] = ["dnnl", "acl"]  # a library this runtime was not built with
    (bad / "manifest.json").write_text(seal_manifest(doc))
    with pytest.raises(ArtifactError, match="calls acl kernels"):
        Predictor(bad)


def test_kernels_option_is_checked(tmp_path):
    from edgecv.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="has no 'dnnl' kernels"):
        compile_model(
            CompileOptions(
                model="mobilenet0.25", target="rpi4", kernels="dnnl", out_dir=str(tmp_path / "a")
            )
        )
    assert not (tmp_path / "a").exists()


def test_settings_key_depends_on_weights_and_attributes():
    """Packed weights are cached under the key: equal keys must mean equal layers."""
    import types

    attrs = types.SimpleNamespace(strides=[1, 1], padding=[0, 0, 0, 0], dilation=[1, 1], groups=1)
    head = types.SimpleNamespace(value=types.SimpleNamespace(attrs=attrs))
    layer = layer_plan.Layer(
        "conv", head, None, np.zeros((2, 1, 1, 2), np.float32), 2, np.ones(2), np.zeros(2)
    )
    w, b = np.ones((1, 2, 2, 1, 1), np.float32), np.zeros(2, np.float32)
    key = kernel_calls.float_settings(layer, w, b)
    assert kernel_calls.float_settings(layer, w, b) == key
    assert kernel_calls.float_settings(layer, w * 2, b)[-1] != key[-1]
    layer.act = offload.ACT_RELU
    assert kernel_calls.float_settings(layer, w, b)[-1] != key[-1]


def test_model_flops_counts_convs_and_gemms(tmp_path):
    from edgecv.bench import model_flops

    g = _Graph()
    conv = g.conv(
        "data", 8, 16, 3, pads=[1, 1, 1, 1], strides=[2, 2]
    )  # 16x5x5 out, 8x3x3 per output
    flat = g.op("Flatten", [g.op("GlobalAveragePool", [conv])])
    gemm = g.op("Gemm", [flat, g.const(np.zeros((10, 16))), g.const(np.zeros(10))], transB=1)
    f32 = TensorProto.FLOAT
    model = g.model(
        [helper.make_tensor_value_info("data", f32, [1, 8, 10, 10])],
        [helper.make_tensor_value_info(gemm, f32, None)],
    )
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert model_flops(tmp_path / "m.onnx") == 2 * (16 * 5 * 5) * (8 * 3 * 3) + 2 * 10 * 16
