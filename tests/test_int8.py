"""int8: calibration statistics, the integer kernels, the compile-time accuracy gate.

References: ONNX Runtime running the same graph with QuantizeLinear/DequantizeLinear around
every layer (it computes in float what the int8 kernels compute in integers, with the same
rounding); hand-computed histograms for the calibrators; the float artifact for accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

try:  # the unit tests (calibration arithmetic) run without the ONNX side
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError:
    ort = TensorProto = helper = numpy_helper = None

from edgecv import calibration
from edgecv.compile import (
    CompileOptions,
    compile_model,
    kernel_abi,
    local_kernel_libraries,
    tvm_api,
)
from edgecv.compile.offload import Quantization, quantize_weights
from edgecv.errors import EdgecvError, InvalidInputError

from conftest import (
    ISA_CAPS,
    check_isa_cap,
    int8_weight_bits_for,
    remeasure_int8_gate,
    rerun_under_isa_cap,
)

pytestmark = pytest.mark.integration

needs_dnnl = pytest.mark.skipif(
    "dnnl" not in local_kernel_libraries(), reason="runtime built without oneDNN"
)


# -- calibration arithmetic (no runtime) --------------------------------------------------


@pytest.mark.unit
def test_weights_quantise_per_output_channel():
    rng = np.random.RandomState(0)
    w = rng.uniform(-1, 1, (2, 3, 4, 3, 3)).astype(np.float32)  # G, O/G, I, KH, KW
    w[1, 2] *= 100.0  # one channel far larger: per-channel scales keep the others precise
    w[0, 1] = 0.0  # an all-zero channel gets scale 1, not a division by zero
    q, s = quantize_weights(w)
    assert q.dtype == np.int8 and q.shape == w.shape and s.shape == (6,)
    assert s[1] == 1.0 and not q[0, 1].any()
    rows = w.reshape(6, -1)
    assert np.allclose(
        s, np.where(np.abs(rows).max(1) > 0, np.abs(rows).max(1) / 127, 1), rtol=1e-6
    )
    err = np.abs(q.reshape(6, -1) * s[:, None] - rows)
    assert np.all(err <= s[:, None] / 2 + 1e-6)  # round to nearest
    assert np.abs(q).max() == 127
    dense_q, dense_s = quantize_weights(rng.uniform(-3, 3, (5, 7)).astype(np.float32))
    assert dense_s.shape == (5,) and np.abs(dense_q).max(axis=1).min() == 127


@pytest.mark.unit
def test_percentile_threshold_by_hand():
    hist = np.zeros(100)
    hist[:10] = 10.0  # 100 values in the first tenth of [0, 5]
    hist[99] = 1.0  # one outlier at the top
    assert calibration.percentile_amax(hist, 5.0, 100.0) == pytest.approx(5.0)
    # 99% of 101 values lie within the first 10 bins: threshold at their upper edge, 0.5
    assert calibration.percentile_amax(hist, 5.0, 99.0) == pytest.approx(0.5)
    assert calibration.percentile_amax(np.zeros(100), 5.0, 99.0) == 5.0


@pytest.mark.unit
def test_entropy_threshold_clips_a_lone_outlier():
    rng = np.random.RandomState(0)
    values = np.abs(rng.normal(0, 1, 200000))
    hist, _ = np.histogram(np.append(values, 40.0), bins=2048, range=(0, 40.0))
    amax = calibration.entropy_amax(hist, 40.0, 128)
    # a Gaussian's information ends a few sigma out; the outlier at 40 is clipped
    assert 2.5 < amax < 8.0
    # a uniform distribution has nothing to clip
    flat = np.ones(2048)
    assert calibration.entropy_amax(flat, 1.0, 128) == pytest.approx(1.0, abs=0.01)


@pytest.mark.unit
def test_sqnr_by_hand():
    hist = np.zeros(4)
    hist[1] = 3.0  # three values at bin centre 1.5 (bins of width 1 over [0, 4])
    # no clipping at amax 3 with 3 levels: step 1, noise step^2/12 per value
    expected = 10 * math.log10((3 * 1.5**2) / (3 * 1 / 12))
    assert calibration.sqnr_db(hist, 4.0, 3.0, 3) == pytest.approx(expected)
    # clipping at 1.0: the error is the distance to the threshold, 0.5 each
    clipped = 10 * math.log10((3 * 1.5**2) / (3 * 0.25))
    assert calibration.sqnr_db(hist, 4.0, 1.0, 1000) == pytest.approx(clipped, rel=1e-3)


@pytest.mark.unit
def test_recipes_load_and_check(tmp_path):
    assert calibration.load_recipe("yolo3_mobilenet0.25_digits", "yolo3").keep_float == ["output"]
    assert calibration.load_recipe("ssd_512_resnet50_v1_voc", "ssd").keep_float == ["output"]
    default = calibration.load_recipe("resnet50_v1b", "resnet_v1b")
    assert default.source == "default.toml" and default.calibrator in calibration.CALIBRATORS
    with pytest.raises(InvalidInputError, match="unknown calibrator"):
        calibration.Recipe(calibrator="magic").check()
    with pytest.raises(InvalidInputError, match="at least 1 image"):
        calibration.Recipe(images=0).check()


@pytest.mark.unit
def test_calibration_data_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        calibration.find_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(InvalidInputError, match="no images"):
        calibration.find_images(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    found = calibration.find_images(bad)
    with pytest.raises(InvalidInputError, match="broken.jpg"):
        list(calibration.read_images(found))
    picked = calibration.pick([tmp_path / f"{i:03d}.png" for i in range(50)], 8, seed=1)
    assert len(picked) == 8 and picked == sorted(picked)
    assert picked == calibration.pick([tmp_path / f"{i:03d}.png" for i in range(50)], 8, seed=1)


@pytest.mark.unit
def test_calibration_table_errors(tmp_path):
    table = {
        "schema": calibration.TABLE_SCHEMA,
        "schema_version": calibration.TABLE_VERSION,
        "model": "m",
        "input_shape": [1, 3, 32, 32],
        "layers": [{"key": "00ff", "scale": 0.1, "signed": True}],
    }
    path = tmp_path / "t.json"
    calibration.save_table(table, path)
    assert calibration.load_table(path, "m", [1, 3, 32, 32])["layers"][0]["key"] == "00ff"
    with pytest.raises(InvalidInputError, match="is for m"):
        calibration.load_table(path, "other", [1, 3, 32, 32])
    with pytest.raises(InvalidInputError, match="is for m"):
        calibration.load_table(path, "m", [1, 3, 64, 64])
    path.write_text(json.dumps({**table, "layers": [{"key": "00ff", "scale": -1}]}))
    with pytest.raises(InvalidInputError, match="no valid scale"):
        calibration.load_table(path, "m", [1, 3, 32, 32])
    path.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not JSON"):
        calibration.load_table(path, "m", [1, 3, 32, 32])
    path.write_text(json.dumps({"schema": "something else"}))
    with pytest.raises(InvalidInputError, match="not an edgecv calibration table"):
        calibration.load_table(path, "m", [1, 3, 32, 32])
    with pytest.raises(InvalidInputError, match="does not exist"):
        calibration.load_table(tmp_path / "missing.json", "m", [1, 3, 32, 32])


# -- the integer kernels against ONNX Runtime with QDQ ------------------------------------


def _layers():
    """A small graph with each int8 form: NCHW graph input read by the first conv (signed
    input), ReLU (unsigned input after it), a max pool on the quantised tensor, a residual
    add of a uint8 tensor, a grouped conv, int8 layers handing each other quantised tensors
    (uint8 after ReLU, int8 with no activation), a dense layer."""
    return [
        # name, cin, cout, k, group, pads
        ("c1", 3, 16, 3, 1, [1, 1, 1, 1]),
        ("c2", 16, 16, 3, 1, [1, 1, 1, 1]),
        ("c3", 16, 16, 3, 4, [1, 1, 1, 1]),
        ("c4", 16, 12, 1, 1, [0, 0, 0, 0]),
        ("c5", 12, 16, 1, 1, [0, 0, 0, 0]),
    ]


def _weights_as_computed(q: np.ndarray, s: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The int8 weights (rows: output channels) and scales the kernels compute with: as they
    are (8 bits), or, on CPUs without VNNI, each channel whose largest |w| exceeds 63
    requantised to round(w * 63 / max|w|) at scale * max|w| / 63 (the runtime's rule, written
    independently here in float32 as the runtime computes it)."""
    if bits == 8:
        return q, s
    rows = q.reshape(len(s), -1)
    w_max = np.maximum(np.abs(rows.astype(np.int32)).max(axis=1), 63).astype(np.float32)
    w7 = np.rint(rows.astype(np.float32) * np.float32(63) / w_max[:, None])
    return w7.reshape(q.shape), (s * (w_max / np.float32(63))).astype(np.float32)


def _int8_graph(
    scales: dict[str, tuple[float, bool]] | None, weights: dict[str, np.ndarray], bits: int = 8
):
    """The float graph (scales None) or its QDQ twin: each layer's input through
    QuantizeLinear/DequantizeLinear, weights replaced by their int8 values times scales
    (`bits` 7: requantised as the kernels do on CPUs without VNNI)."""
    nodes, inits = [], []

    def const(name, a, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(a, dtype=dtype), name))
        return name

    def qdq(name, x):
        if scales is None:
            return x
        s, signed = scales[name]
        zp = const(f"{name}_zp", 0, np.int8 if signed else np.uint8)
        sc = const(f"{name}_s", s)
        nodes.append(helper.make_node("QuantizeLinear", [x, sc, zp], [f"{name}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", sc, zp], [f"{name}_dq"]))
        return f"{name}_dq"

    def weight(name):
        w = weights[name]
        if scales is None:
            return const(f"{name}_w", w)
        if w.ndim == 4:
            q, s = _weights_as_computed(*quantize_weights(w.reshape(1, *w.shape)), bits)
            return const(
                f"{name}_w", q.reshape(w.shape).astype(np.float32) * s[:, None, None, None]
            )
        # Gemm weight K x N; quantised per output (N)
        q, s = _weights_as_computed(*quantize_weights(w.T.copy()), bits)
        return const(f"{name}_w", (q.astype(np.float32) * s[:, None]).T)

    def conv(name, x, group, pads):
        nodes.append(
            helper.make_node(
                "Conv",
                [qdq(name, x), weight(name), const(f"{name}_b", weights[name + "_b"])],
                [name],
                group=group,
                pads=pads,
                kernel_shape=list(weights[name].shape[2:]),
            )
        )
        return name

    c1 = conv("c1", "data", 1, [1, 1, 1, 1])
    nodes.append(helper.make_node("Relu", [c1], ["relu1"]))
    r1 = "r1"  # c1 writes uint8 through this max pool (which then runs on uint8)
    nodes.append(
        helper.make_node("MaxPool", ["relu1"], [r1], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    )
    c2 = conv("c2", r1, 1, [1, 1, 1, 1])
    # c1 writes r1 quantised with c2's input scale, and c2 adds that same uint8 tensor
    nodes.append(helper.make_node("Add", [c2, r1 if scales is None else "c2_dq"], ["a2"]))
    nodes.append(helper.make_node("Relu", ["a2"], ["r2"]))
    c3 = conv("c3", "r2", 4, [1, 1, 1, 1])
    nodes.append(helper.make_node("Relu", [c3], ["r3"]))
    c4 = conv("c4", "r3", 1, [0, 0, 0, 0])  # no activation: a signed tensor for c5
    c5 = conv("c5", c4, 1, [0, 0, 0, 0])
    nodes.append(helper.make_node("Relu", [c5], ["r5"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["r5"], ["p"]))
    nodes.append(helper.make_node("Flatten", ["p"], ["f"]))
    nodes.append(
        helper.make_node(
            "Gemm", [qdq("d", "f"), weight("d"), const("d_b", weights["d_b"])], ["logits"]
        )
    )
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("data", f32, [1, 3, 12, 10])],
        [
            helper.make_tensor_value_info("logits", f32, None),
            helper.make_tensor_value_info("r2", f32, None),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _qdq_case(bits: int = 8):
    """A small graph, per-layer input scales as calibration would set them, ONNX Runtime's
    literal quantise/dequantise result (weights of `bits` bits, see _weights_as_computed),
    and the Quantization (keys from the rewrite's plan)."""
    rng = np.random.RandomState(0)
    weights = {}
    for name, cin, cout, k, group, _ in _layers():
        weights[name] = rng.uniform(-1, 1, (cout, cin // group, k, k)).astype(np.float32)
        weights[name + "_b"] = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
    weights["d"] = rng.uniform(-1, 1, (16, 10)).astype(np.float32)
    weights["d_b"] = rng.uniform(-0.5, 0.5, 10).astype(np.float32)
    x = rng.uniform(-2, 2, (1, 3, 12, 10)).astype(np.float32)
    float_model = _int8_graph(None, weights)
    sess = ort.InferenceSession(float_model.SerializeToString(), providers=["CPUExecutionProvider"])
    # each layer's input range, as calibration would measure it (ORT gives the tensors)
    probe = float_model
    for name in ("r1", "r2", "r3", "c4", "f"):
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    _, _, r1, r2, r3, t4, f = sess.run(None, {"data": x})
    assert t4.min() < 0 < t4.max()
    scales = {
        "c1": (float(np.abs(x).max()) / 127, True),
        "c2": (float(r1.max()) / 255, False),
        "c3": (float(r2.max()) / 255 * 0.8, False),  # clipped: saturation must agree too
        "c4": (float(r3.max()) / 255 * 0.9, False),  # written as uint8 by c3
        "c5": (float(np.abs(t4).max()) / 127, True),  # written as int8 by c4
        "d": (float(f.max()) / 255, False),
    }
    # graph optimisations off: ORT would fuse the QDQ pairs into its own integer kernels,
    # which round differently; the reference is the literal quantise/dequantise arithmetic
    literal = ort.SessionOptions()
    literal.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    expected = ort.InferenceSession(
        _int8_graph(scales, weights, bits).SerializeToString(),
        literal,
        providers=["CPUExecutionProvider"],
    ).run(None, {"data": x})

    mod, _ = tvm_api.import_onnx(_int8_graph(None, weights), embed_params=True)
    _, plan = tvm_api.offload_kernels(mod, "dnnl")
    keys = [int(layer["key"], 16) for layer in plan["layers"]]  # graph order: c1 ... c5, d
    names = ["c1", "c2", "c3", "c4", "c5", "d"]
    quant = Quantization({k: scales[n] for k, n in zip(keys, names, strict=True)})
    return weights, x, quant, expected


@needs_dnnl
@pytest.mark.parametrize("isa", ["native", "7-bit", *ISA_CAPS])
def test_int8_kernels_match_onnxruntime_qdq(tmp_path, isa):
    """On this CPU, with 7-bit weights forced (what a CPU without VNNI computes, here), and
    in fresh processes with oneDNN capped at older instruction sets (without VNNI the kernels
    compute with 7-bit weights: the reference does the same)."""
    if isa not in ("native", "7-bit"):
        rerun_under_isa_cap(
            "test_int8.py::test_int8_kernels_match_onnxruntime_qdq[native]", isa, tmp_path
        )
        return
    from edgecv import _runtime

    assert _runtime.int8_weight_bits() == int8_weight_bits_for(check_isa_cap())
    _runtime.set_int8_weight_bits(7 if isa == "7-bit" else 0)
    try:
        _check_int8_kernels_against_qdq(tmp_path, _runtime.int8_weight_bits())
    finally:
        _runtime.set_int8_weight_bits(0)


def run_qdq_graph(tmp_path, library: str, bits: int) -> tuple[dict, list[dict]]:
    """The int8 parity graph offloaded to ``library``'s int8 kernels, built and run against
    ONNX Runtime's QDQ outputs (within 1e-3 of each output's range): the offload's stats
    and the kernel layers the run built."""
    from edgecv import _runtime

    weights, x, quant, expected = _qdq_case(bits)
    mod, _ = tvm_api.import_onnx(_int8_graph(None, weights), embed_params=True)
    mod, stats = tvm_api.offload_kernels(mod, library, quant)
    tvm_api.build(mod, {"kind": "llvm"}, tmp_path / "q.so")
    _runtime.clear_kernel_cache()
    _runtime.kernel_layers(reset=True)
    got = tvm_api.run(tmp_path / "q.so", [x], [])
    for g, e in zip(got, expected, strict=True):
        scale = float(np.abs(e).max())
        assert float(np.abs(g - e).max()) <= 1e-3 * scale, (g, e)
    return stats, _runtime.kernel_layers()


def _check_int8_kernels_against_qdq(tmp_path, bits: int) -> None:
    stats, built = run_qdq_graph(tmp_path, "dnnl", bits)
    assert stats["int8"] == 6 and all(e["precision"] == "int8" for e in stats["layers"])
    # c1 -> max pool -> c2 (uint8: its input and its residual), c3 -> c4 (uint8), c4 -> c5
    # (int8)
    assert stats["int8_outputs"] == 3 and stats["pool2d"] == 1
    # they really ran as integer primitives: int8/uint8 inputs, int8 weights, no reference impl
    pools = [b for b in built if b["kernel"] == "edgecv.dnnl.pool2d"]
    assert [(b["src"], b["dst"]) for b in pools] == [("u8", "u8")]
    built = [b for b in built if b not in pools]
    assert {b["kernel"] for b in built} == {"edgecv.dnnl.conv2d_q8", "edgecv.dnnl.dense_q8"}
    assert {b["src"] for b in built} == {"s8", "u8"}
    assert [b["residual"] for b in built].count("u8") == 1  # c2 adds c1's uint8 output
    assert all(b["weights"] == "s8" and not b["implementation"].startswith("ref") for b in built), (
        built
    )
    assert {b["weight_bits"] for b in built} == {bits}


def test_integer_relax_ops_match_onnxruntime_qdq(tmp_path):
    """The int8 path for targets without a kernel library (ARM): the same calibrated layers
    become int8/uint8 x int8 -> int32 Relax conv2d/matmul in TVM-generated code; no float
    conv or matmul is left, and the result is ONNX Runtime's literal QDQ arithmetic."""
    from tvm import relax

    from edgecv.compile.int8_lowering import integerize
    from edgecv.compile.offload import prepare

    weights, x, quant, expected = _qdq_case()
    mod, _ = tvm_api.import_onnx(_int8_graph(None, weights), embed_params=True)
    mod, stats = integerize(prepare(mod), quant)
    assert stats["int8"] == 6 and stats["conv2d"] == 5 and stats["dense"] == 1
    heavy = [
        b.value
        for block in mod["main"].body.blocks
        for b in block.bindings
        if isinstance(b.value, relax.Call)
        and getattr(b.value.op, "name", "") in ("relax.nn.conv2d", "relax.matmul")
    ]
    assert len(heavy) == 6
    for call in heavy:
        assert str(call.args[0].ty.dtype) in ("int8", "uint8"), call.args[0].ty
        assert str(call.args[1].ty.dtype) == "int8"
        assert str(call.ty.dtype) == "int32"
    tvm_api.build(mod, {"kind": "llvm"}, tmp_path / "q.so")
    got = tvm_api.run(tmp_path / "q.so", [x], [])
    for g, e in zip(got, expected, strict=True):
        scale = float(np.abs(e).max())
        assert float(np.abs(g - e).max()) <= 1e-3 * scale, (g, e)


@needs_dnnl
@pytest.mark.parametrize("isa", ["native", *ISA_CAPS])
def test_int8_kernels_reject_bad_scales(tmp_path, isa):
    if isa != "native":
        rerun_under_isa_cap(
            "test_int8.py::test_int8_kernels_reject_bad_scales[native]", isa, tmp_path
        )
        return
    check_isa_cap()
    import tvm

    conv = tvm.get_global_func("edgecv.dnnl.conv2d_q8")
    f = lambda *s: tvm.runtime.tensor(np.zeros(s, np.float32))  # noqa: E731
    w = tvm.runtime.tensor(np.ones((1, 8, 3, 1, 1), np.int8))
    conv1x1 = kernel_abi.Conv2d(1, 1, 0, 0, 0, 0, 1, 1, 1)  # no activation, no residual

    def settings(key, scale=0.1, conv=conv1x1, **quant):  # int8 input, float output
        record = kernel_abi.Conv2dQ8(conv, scale, True, **quant)
        return tvm.runtime.ShapeTuple(kernel_abi.encode(record, key=key))

    good = settings(11)
    ones = tvm.runtime.tensor(np.ones(8, np.float32))
    conv(f(1, 4, 4, 3), w, ones, f(8), good, f(1, 4, 4, 8))
    with pytest.raises(ValueError, match="input scale must be positive"):
        conv(
            f(1, 4, 4, 3),
            w,
            ones,
            f(8),
            settings(12, scale=-1.0),
            f(1, 4, 4, 8),
        )
    with pytest.raises(ValueError, match="weight scales must be positive"):
        conv(
            f(1, 4, 4, 3),
            w,
            f(8),
            f(8),
            settings(13),
            f(1, 4, 4, 8),
        )
    with pytest.raises(TypeError, match="int8"):
        conv(f(1, 4, 4, 3), f(1, 8, 3, 1, 1), ones, f(8), good, f(1, 4, 4, 8))
    # the same layer given its input in float (quantised on the way in), then already in int8
    # (as when its producer writes int8 in another artifact): one result, two primitives
    q = np.random.RandomState(1).randint(-100, 100, (1, 4, 4, 3)).astype(np.int8)
    outs = []
    for x in (tvm.runtime.tensor(q.astype(np.float32) * np.float32(0.1)), tvm.runtime.tensor(q)):
        y = f(1, 4, 4, 8)
        conv(x, w, ones, f(8), good, y)
        outs.append(y.numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6)
    assert np.abs(outs[0]).max() > 1
    u8 = tvm.runtime.tensor(np.zeros((1, 4, 4, 3), np.uint8))  # quantised input, wrong sign
    with pytest.raises(TypeError, match="calibrated for int8"):
        conv(u8, w, ones, f(8), good, f(1, 4, 4, 8))
    # a residual the settings say arrives as uint8 (scale 0.1, added first): float given
    add_first = dataclasses.replace(conv1x1, residual=kernel_abi.Residual.ADD_THEN_ACT)
    res_u8 = settings(14, conv=add_first, residual_kind=kernel_abi.Quant.UINT8, residual_scale=0.1)
    with pytest.raises(TypeError, match="uint8"):
        conv(
            f(1, 4, 4, 3),
            w,
            ones,
            f(8),
            f(1, 4, 4, 8),
            res_u8,
            f(1, 4, 4, 8),
        )
    # no residual add, yet its kind
    no_add = settings(15, residual_kind=kernel_abi.Quant.UINT8, residual_scale=0.1)
    with pytest.raises(ValueError, match="quantised residual but no residual"):
        conv(f(1, 4, 4, 3), w, ones, f(8), no_add, f(1, 4, 4, 8))


# -- the whole path on the digits classifier that edgecv trained -------------------------


def _digits_int8(out, **options):
    return compile_model(
        CompileOptions(model="mobilenet0.25_digits", precision="int8", out_dir=str(out), **options)
    )


@needs_dnnl
@pytest.mark.parity
def test_int8_digits_classifier_within_half_a_point(digits_root, tmp_path, capsys):
    from edgecv import _runtime
    from edgecv.datasets import open_dataset
    from edgecv.evaluate import ArtifactModel, evaluate

    out = _digits_int8(
        tmp_path / "int8",
        calib_data=str(digits_root / "classification" / "train"),
        calib_images=32,
        eval_data=str(digits_root / "classification"),
    )
    doc = json.loads((out / "manifest.json").read_text())
    q = doc["report"]["int8"]
    assert doc["precision"] == "int8" and q["layers_float"] == [] and q["layers_int8"] == 28
    assert q["accuracy"]["passed"] and q["accuracy"]["drop"] <= 0.5
    table = json.loads((out / "calibration.json").read_text())
    assert len(table["layers"]) == 28 and table["images"] == 32
    # the generic x86_64 target runs on CPUs with and without VNNI: the gate scored 8-bit
    # weights (where this CPU can) and 7-bit ones, and kept the worse; each measured again,
    # independently of the compile's own report
    _runtime.clear_kernel_cache()
    _runtime.kernel_layers(reset=True)
    data = open_dataset(digits_root / "classification", "val", "classification")
    got = remeasure_int8_gate(
        q["accuracy"], lambda: evaluate(ArtifactModel(out), data)["top1"] * 100
    )
    assert all(q["accuracy"]["float"] - v <= 0.5 for v in got.values())
    kernels = {b["kernel"] for b in _runtime.kernel_layers()}
    assert kernels == {"edgecv.dnnl.conv2d_q8", "edgecv.dnnl.dense_q8"}, kernels

    from edgecv.cli import main

    assert main(["info", str(out)]) == 0
    assert (
        "28 layers int8, float: none; percentile on 32 images; top1 float"
        in capsys.readouterr().out
    )
    # the table is reusable; a table of another model is refused by name
    again = _digits_int8(tmp_path / "again", calibration_table=str(out / "calibration.json"))
    assert json.loads((again / "manifest.json").read_text())["precision"] == "int8"
    table["model"] = "yolo3_mobilenet0.25_digits"
    (tmp_path / "other.json").write_text(json.dumps(table))
    with pytest.raises(InvalidInputError, match="is for yolo3_mobilenet0.25_digits"):
        _digits_int8(tmp_path / "x", calibration_table=str(tmp_path / "other.json"))
    assert not (tmp_path / "x").exists()


@needs_dnnl
def test_int8_gate_fails_with_a_layer_table(digits_root, tmp_path):
    """A drop that no fallback can bring within bounds (negative allowance) fails the
    compile with the per-layer sensitivity table and leaves no artifact."""
    with pytest.raises(EdgecvError, match="per-layer sensitivity") as err:
        _digits_int8(
            tmp_path / "gated",
            calib_data=str(digits_root / "classification" / "train"),
            calib_images=8,
            eval_data=str(digits_root / "classification"),
            max_drop=-1.0,
        )
    assert "sqnr" in str(err.value) and not (tmp_path / "gated").exists()


@needs_dnnl
def test_int8_without_calibration_data_uses_the_built_in_photos(tmp_path, capsys):
    """No --calib-data: calibrated on edgecv's built-in photos, with a one-line warning; the
    report says which set. An empty calibration folder is still refused."""
    out = _digits_int8(tmp_path / "a")
    q = json.loads((out / "manifest.json").read_text())["report"]["int8"]
    assert q["calibration_set"] == "built-in" and q["layers_int8"] == 28
    assert q["calibration_images"] == len(calibration.builtin_images()) >= 8
    err = capsys.readouterr().err
    assert err.count("warning: no --calib-data: calibrating int8 on edgecv's") == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no images"):
        _digits_int8(tmp_path / "b", calib_data=str(tmp_path / "empty"))
    assert not (tmp_path / "b").exists()
