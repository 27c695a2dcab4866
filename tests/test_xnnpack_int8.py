"""The XNNPACK int8 kernels (edgecv.xnnpack.conv2d_q8 / dense_q8, xnnpack_int8.cc) on x86:
against the oneDNN int8 kernels and an exact NumPy reference layer by layer, and against
ONNX Runtime's literal QDQ arithmetic on test_int8.py's int8 parity graph.

Tolerances. Quantised outputs: at most 1 step per element. XNNPACK's qc8 requantises in
float32 (accumulator x (input scale x weight scale / output scale), then rounds), oneDNN and
the reference scale the accumulator in another order (oneDNN: accumulator x output scale
plus the bias over that scale; the reference: in float64), so a value within float32
rounding of a half step can round either way; the bias is rounded to int32 accumulator
units in XNNPACK only. Float outputs: 1e-5 of the largest |value| (float summation order).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgecv.compile import kernel_abi, local_kernel_libraries

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not {"dnnl", "xnnpack"} <= set(local_kernel_libraries()),
        reason="runtime built without oneDNN or XNNPACK",
    ),
]

Q = kernel_abi.Quant
A = kernel_abi.Act


def _ref_conv(x, w, ws, b, in_scale, stride, pad, groups, dilation=1):
    """Exact int8 conv (x quantised NHWC, w G x O/G x I/G x K x K) scaled to float64."""
    n, h, wd, _ = x.shape
    g, og, ig, k, _ = w.shape
    d = dilation
    xp = np.zeros((n, h + 2 * pad, wd + 2 * pad, g * ig), np.int64)
    xp[:, pad : pad + h, pad : pad + wd] = x
    span = d * (k - 1) + 1
    oh, ow = (h + 2 * pad - span) // stride + 1, (wd + 2 * pad - span) // stride + 1
    acc = np.zeros((n, oh, ow, g * og), np.int64)
    for gi in range(g):
        wg = w[gi].astype(np.int64)  # og x ig x k x k
        for r in range(k):
            for c in range(k):
                patch = xp[
                    :, r * d : r * d + stride * oh : stride, c * d : c * d + stride * ow : stride
                ]
                patch = patch[..., gi * ig : (gi + 1) * ig]
                acc[..., gi * og : (gi + 1) * og] += patch @ wg[:, :, r, c].T
    return acc * (np.float64(np.float32(in_scale)) * ws.astype(np.float64)) + b


def _finish(v, act, residual, order, out_kind, out_scale, clip=(0.0, 6.0)):
    """Residual, activation and output quantisation, as the settings define them."""
    if order == 1:
        v = v + residual
    if act == A.RELU:
        v = np.maximum(v, 0)
    elif act == A.CLIP:
        v = np.clip(v, *clip)
    if order == 2:
        v = v + residual
    if out_kind == Q.FLOAT:
        return v
    lo, hi = (0, 255) if out_kind == Q.UINT8 else (-128, 127)
    return np.clip(np.rint(v / out_scale), lo, hi)


def _as_int8(a):
    """A uint8 array as int8 storage, v - 128 (Quant.UINT8_AS_INT8); other arrays as they are."""
    return (a ^ 0x80).view(np.int8) if a.dtype == np.uint8 else a


def _call(kernel, args, settings, out):
    import tvm

    tensors = [tvm.runtime.tensor(a) for a in args]
    y = tvm.runtime.tensor(out)
    tvm.get_global_func(kernel)(*tensors, tvm.runtime.ShapeTuple(settings), y)
    return y.numpy()


def _compare(got, want, out_kind, what, two_stage=False):
    if out_kind == Q.FLOAT:
        tol = 1e-5 * float(np.abs(want).max())
        assert float(np.abs(got - want).max()) <= tol, what
        return
    diff = got.astype(np.int64) - want.astype(np.int64)
    if not two_stage:
        assert np.abs(diff).max() <= 1, (what, np.abs(diff).max())
        assert (diff == 0).mean() > 0.95, what  # ties are rare: most elements agree exactly
        return
    # two roundings (the conv to its int8 grid, then XNNPACK's fixed-point add): one step
    # apart where either lands on a tie, rarely more, and no bias either way
    assert (np.abs(diff) <= 1).mean() > 0.99, (what, np.abs(diff).max())
    assert (diff == 0).mean() > 0.9, (what, (diff == 0).mean())
    assert abs(diff.mean()) < 0.05, (what, diff.mean())


def _output_clamp(act, clip, out_kind, out_scale):
    """The output's int8 clamp at its zero point (a uint8 output at -128), activation folded."""
    out_zero = 0 if out_kind == Q.INT8 else -128
    lo, hi = -128, 127
    if act == A.RELU:
        lo = out_zero
    if act == A.CLIP:
        bounds = np.float32(clip) / np.float32(out_scale) + np.float32(out_zero)
        low, high = np.clip(np.rint(bounds), -128, 127).astype(int)
        lo, hi = max(lo, int(low)), min(hi, int(high))
    return out_zero, lo, hi


def _integer_residual(conv, res_value, act, clip, out_kind, out_scale, res_kind, res_scale):
    """What an integer residual layer computes before its output rounding (xnnpack_int8.cc,
    MidQuantisation, re-derived here): the conv on an int8 grid spanning the conv values that
    can change the output, [out_min - res_max, out_max - res_min] on 254 steps, the zero point
    rounded up; then plus the residual. Returns that sum and the grid's step."""
    out_zero, lo, hi = _output_clamp(act, clip, out_kind, out_scale)
    out_min, out_max = (lo - out_zero) * out_scale, (hi - out_zero) * out_scale
    res_min = 0.0 if res_kind == Q.UINT8 else -128 * res_scale
    res_max = (255 if res_kind == Q.UINT8 else 127) * res_scale
    c_min, c_max = out_min - res_max, out_max - res_min
    step = (c_max - c_min) / 254
    zero = np.ceil(-128 - c_min / step)
    step32 = float(np.float32(step))
    mid = np.clip(np.rint(conv / step32) + zero, -128, 127)
    return (mid - zero) * step32 + res_value, step / out_scale


# cin, cout, k, groups, stride, pad; depthwise: groups = cin = cout
CONVS = [(8, 16, 3, 1, 1, 1), (16, 16, 3, 4, 2, 1), (16, 16, 3, 16, 1, 1), (12, 8, 1, 1, 1, 0)]


@pytest.mark.parametrize("conv", CONVS, ids=["plain", "grouped", "depthwise", "1x1"])
@pytest.mark.parametrize("src", ["u8", "s8", "f32-unsigned", "f32-signed"])
@pytest.mark.parametrize(
    "out_kind,act,residual",
    [
        (Q.UINT8, A.RELU, None),
        (Q.INT8, A.NONE, None),
        (Q.UINT8, A.CLIP, None),
        (Q.FLOAT, A.RELU, None),
        (Q.UINT8, A.RELU, (1, Q.UINT8)),
        (Q.INT8, A.NONE, (1, Q.UINT8)),
        (Q.UINT8, A.RELU, (1, Q.INT8)),
        (Q.FLOAT, A.NONE, (2, Q.FLOAT)),
    ],
    ids=[
        "u8-relu",
        "s8",
        "u8-clip",
        "f32-relu",
        "u8-residual-u8",
        "s8-residual-u8",
        "u8-residual-s8",
        "f32-residual-after",
    ],
)
def test_conv2d_q8_matches_onednn_and_reference(conv, src, out_kind, act, residual):
    from edgecv import _runtime

    cin, cout, k, groups, stride, pad = conv
    rng = np.random.RandomState(cin * 100 + cout + groups)
    signed = src in ("s8", "f32-signed")
    xq = rng.randint(-128 if signed else 0, 128 if signed else 256, (1, 9, 7, cin))
    in_scale = 0.02
    # |w| <= 63: what oneDNN computes with on CPUs without VNNI too (7-bit weights), so that
    # both libraries compute with the same integers here
    w = rng.randint(-63, 64, (groups, cout // groups, cin // groups, k, k)).astype(np.int8)
    ws = rng.uniform(0.002, 0.01, cout).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
    ref = _ref_conv(xq, w, ws, b, in_scale, stride, pad, groups)
    out_scale = float(np.abs(ref).max()) / (255 if out_kind == Q.UINT8 else 127) * 0.9
    order, res_kind = residual or (0, Q.FLOAT)
    res_scale = 0.03 if res_kind != Q.FLOAT else 0.0
    res_arrays, res_value = [], 0.0
    if residual is not None:
        if res_kind != Q.FLOAT:
            lo, dtype = (0, np.uint8) if res_kind == Q.UINT8 else (-128, np.int8)
            rq = rng.randint(lo, lo + 256, ref.shape).astype(dtype)
            res_arrays, res_value = [rq], rq * np.float64(np.float32(res_scale))
        else:
            rf = rng.uniform(-2, 2, ref.shape).astype(np.float32)
            res_arrays, res_value = [rf], rf.astype(np.float64)
    clip = (0.0, 6.0) if act == A.CLIP else (0.0, 0.0)
    record = kernel_abi.Conv2dQ8(
        kernel_abi.Conv2d(
            stride,
            stride,
            pad,
            pad,
            pad,
            pad,
            1,
            1,
            groups,
            kernel_abi.Activation(act, *clip),
            order,
        ),
        in_scale,
        signed,
        out_kind,
        out_scale if out_kind != Q.FLOAT else 0.0,
        res_kind,
        res_scale,
    )
    settings = kernel_abi.encode(record, content=[w, ws, b])
    x = (
        xq.astype(np.int8 if signed else np.uint8)
        if src in ("u8", "s8")
        else (xq * np.float32(in_scale)).astype(np.float32)
    )
    dtype = {Q.FLOAT: np.float32, Q.UINT8: np.uint8, Q.INT8: np.int8}[out_kind]
    out = np.zeros(ref.shape, dtype)
    want = _finish(ref, act, res_value, order, out_kind, out_scale)
    # a quantised residual added before the activation into a quantised output: qc8, then
    # XNNPACK's int8 add (qu8 when both are uint8), with the conv rounded in between
    # (unless that grid's step is over 3 output steps: the float path then)
    int_residual = residual is not None and out_kind != Q.FLOAT and res_kind != Q.FLOAT
    exact = want
    if int_residual:
        total, mid_steps = _integer_residual(
            ref, res_value, act, clip, out_kind, out_scale, res_kind, res_scale
        )
        int_residual = mid_steps <= 3
    if int_residual:
        want = _finish(total, act, 0.0, 0, out_kind, out_scale, clip)
    _runtime.kernel_layers(reset=True)
    got = _call("edgecv.xnnpack.conv2d_q8", [x, w, ws, b, *res_arrays], settings, out)
    _compare(got, want, out_kind, "xnnpack vs reference", int_residual)
    onednn = _call("edgecv.dnnl.conv2d_q8", [x, w, ws, b, *res_arrays], settings, out)
    if int_residual:  # oneDNN adds in float: the conv's extra rounding is the difference
        err = np.abs(got.astype(np.int64) - onednn.astype(np.int64))
        assert err.max() <= np.floor(mid_steps / 2) + 2, (err.max(), mid_steps)
        assert np.abs(exact.astype(np.int64) - onednn.astype(np.int64)).max() <= 1
    else:
        _compare(got, onednn, out_kind, "xnnpack vs oneDNN")
    (built,) = [e for e in _runtime.kernel_layers() if e["kernel"] == "edgecv.xnnpack.conv2d_q8"]
    assert (built["src"], built["weights"]) == ("s8" if signed else "u8", "s8")
    # quantised output, no residual: XNNPACK's integer operator; else float on int8 values
    if int_residual:
        add = "qu8" if (out_kind, res_kind) == (Q.UINT8, Q.UINT8) else "qs8"
        assert built["implementation"] == f"xnnpack qc8 + {add} add"
    else:
        integer = out_kind != Q.FLOAT and residual is None
        want_impl = "xnnpack qc8" if integer else "xnnpack f32 on int8 values"
        assert built["implementation"] == want_impl
    # the same layer with its uint8 tensors stored as int8, v - 128 (what XNNPACK int8 graphs
    # hand between layers): the same values, bit for bit, on either path
    shift = {Q.UINT8: Q.UINT8_AS_INT8}
    if src != "u8" and out_kind != Q.UINT8 and res_kind != Q.UINT8:
        return
    record = dataclasses.replace(
        record,
        output_kind=shift.get(out_kind, out_kind),
        residual_kind=shift.get(res_kind, res_kind),
        input_as_int8=src == "u8",
    )
    settings = kernel_abi.encode(record, content=[w, ws, b])
    _runtime.kernel_layers(reset=True)
    got_int8 = _call(
        "edgecv.xnnpack.conv2d_q8",
        [_as_int8(x), w, ws, b, *map(_as_int8, res_arrays)],
        settings,
        _as_int8(out),
    )
    np.testing.assert_array_equal(got_int8, _as_int8(got))
    (built,) = [e for e in _runtime.kernel_layers() if e["kernel"] == "edgecv.xnnpack.conv2d_q8"]
    assert built["src"] == ("u8 as s8" if src == "u8" else "s8" if signed else "u8")
    assert built["dst"] == {Q.UINT8: "u8 as s8", Q.INT8: "s8", Q.FLOAT: "f32"}[out_kind]


@pytest.mark.parametrize(
    "case", ["batch2-dilation2", "clip-low", "requant-256", "bias-overflow", "subnormal-scale"]
)
def test_conv2d_q8_edge_cases(case):
    """Settings the main sweep does not reach. The first two run XNNPACK's qc8 operator; the
    others are what qc8 cannot take (input x weight / output scale >= 256; a bias beyond the
    int32 accumulator's room; a subnormal weight scale, which XNNPACK refuses): they must fall
    back to the float path and still give the reference's result, not an error or a wrapped
    accumulator."""
    from edgecv import _runtime

    rng = np.random.RandomState(11)
    n, dilation, stride, pad, cin, cout, k = (2, 2, 1, 2, 8, 8, 3)
    if case != "batch2-dilation2":
        n, dilation = 1, 1
    xq = rng.randint(0, 256, (n, 9, 8, cin))
    in_scale = 0.02
    w = rng.randint(-63, 64, (1, cout, cin, k, k)).astype(np.int8)
    ws = rng.uniform(0.002, 0.01, cout).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
    if case == "bias-overflow":
        ws[3], b[3] = 1e-9, 0.5  # a dead channel: 2.5e10 accumulator units of bias
    if case == "subnormal-scale":
        ws[5] = np.float32(1e-40)
    ref = _ref_conv(xq, w, ws, b, in_scale, stride, pad, 1, dilation)
    out_scale = float(np.abs(ref).max()) / 255 * 0.9
    if case == "requant-256":
        w[:] = np.sign(w) + (w == 0)  # |w| = 1, so that the tiny output scale still fits
        ws[:] = 1.0
        ref = _ref_conv(xq, w, ws, b, in_scale, stride, pad, 1, dilation)
        out_scale = in_scale / 300  # requantisation scale 300
    act, clip = (A.CLIP, (0.5, 3.0)) if case == "clip-low" else (A.RELU, (0.0, 0.0))
    if case == "clip-low":
        out_scale = 3.0 / 255
    activation = kernel_abi.Activation(act, *clip)
    conv = kernel_abi.Conv2d(stride, stride, pad, pad, pad, pad, dilation, dilation, 1, activation)
    record = kernel_abi.Conv2dQ8(conv, in_scale, False, Q.UINT8, out_scale)
    settings = kernel_abi.encode(record, content=[w, ws, b])
    want = _finish(ref, act, 0.0, 0, Q.UINT8, out_scale, clip)
    _runtime.kernel_layers(reset=True)
    x = xq.astype(np.uint8)
    got = _call("edgecv.xnnpack.conv2d_q8", [x, w, ws, b], settings, np.zeros(ref.shape, np.uint8))
    _compare(got, want, Q.UINT8, case)
    (built,) = [e for e in _runtime.kernel_layers() if e["kernel"] == "edgecv.xnnpack.conv2d_q8"]
    integer = case in ("batch2-dilation2", "clip-low")
    assert built["implementation"] == ("xnnpack qc8" if integer else "xnnpack f32 on int8 values")


@pytest.mark.parametrize(
    "case", ["clip-low-batch2", "coarse-residual", "add-ratio", "subnormal-residual-scale"]
)
def test_residual_layer_edge_cases(case):
    """Integer residual layers: batch 2 with a clip whose lower bound is not 0 (qc8 + add);
    a residual 10x coarser than the output (the conv's grid would be 5.5 output steps), a
    residual scale 2000x finer than the output (outside XNNPACK's add ratios) and a subnormal
    residual scale (XNNPACK refuses it): float path, reference result, no error."""
    from edgecv import _runtime

    rng = np.random.RandomState(5)
    n = 2 if case == "clip-low-batch2" else 1
    cin, cout, k, pad, in_scale = 8, 12, 3, 1, 0.02
    xq = rng.randint(0, 256, (n, 7, 6, cin))
    w = rng.randint(-63, 64, (1, cout, cin, k, k)).astype(np.int8)
    ws = rng.uniform(0.002, 0.01, cout).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
    ref = _ref_conv(xq, w, ws, b, in_scale, 1, pad, 1)
    out_scale = float(np.abs(ref).max()) / 255
    res_scale = {
        "clip-low-batch2": out_scale,
        "coarse-residual": 10 * out_scale,
        "add-ratio": out_scale / 2000,
        "subnormal-residual-scale": 1e-40,
    }[case]
    rq = rng.randint(0, 256, ref.shape).astype(np.uint8)
    res_value = rq * np.float64(np.float32(res_scale))
    act, clip = (A.CLIP, (0.3, 3.0)) if case == "clip-low-batch2" else (A.RELU, (0.0, 0.0))
    activation = kernel_abi.Activation(act, *clip)
    conv = kernel_abi.Conv2d(1, 1, pad, pad, pad, pad, 1, 1, 1, activation, 1)
    record = kernel_abi.Conv2dQ8(conv, in_scale, False, Q.UINT8, out_scale, Q.UINT8, res_scale)
    settings = kernel_abi.encode(record, content=[w, ws, b])
    integer = case == "clip-low-batch2"
    if integer:
        total, mid_steps = _integer_residual(
            ref, res_value, act, clip, Q.UINT8, out_scale, Q.UINT8, res_scale
        )
        assert mid_steps <= 3
        want = _finish(total, act, 0.0, 0, Q.UINT8, out_scale, clip)
    else:
        want = _finish(ref, act, res_value, 1, Q.UINT8, out_scale, clip)
    _runtime.kernel_layers(reset=True)
    args = [xq.astype(np.uint8), w, ws, b, rq]
    got = _call("edgecv.xnnpack.conv2d_q8", args, settings, np.zeros(ref.shape, np.uint8))
    _compare(got, want, Q.UINT8, case, two_stage=integer)
    (built,) = [e for e in _runtime.kernel_layers() if e["kernel"] == "edgecv.xnnpack.conv2d_q8"]
    want_impl = "xnnpack qc8 + qu8 add" if integer else "xnnpack f32 on int8 values"
    assert built["implementation"] == want_impl


@pytest.mark.parametrize("out_kind", [Q.INT8, Q.FLOAT], ids=["qc8", "float-path"])
def test_nchw_float_input_quantised_across_blocks(out_kind):
    """The graph's NCHW float input quantised into NHWC by blocks of pixels that cross from
    one image to the next (batch 2, 3 channels, 150x150: blocks of 21845 pixels, converted in
    runs of 256 per channel), for the integer operator and for the float path."""
    rng = np.random.RandomState(9)
    n, cin, hw, cout, in_scale = 2, 3, 150, 4, 0.02
    xq = rng.randint(0, 256, (n, hw, hw, cin))
    x_nchw = np.ascontiguousarray(
        (xq * np.float32(in_scale)).astype(np.float32).transpose(0, 3, 1, 2)
    )
    w = rng.randint(-63, 64, (1, cout, cin, 1, 1)).astype(np.int8)
    ws = rng.uniform(0.002, 0.01, cout).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
    ref = _ref_conv(xq, w, ws, b, in_scale, 1, 0, 1)
    out_scale = float(np.abs(ref).max()) / 127 if out_kind == Q.INT8 else 0.0
    conv = kernel_abi.Conv2d(1, 1, 0, 0, 0, 0, 1, 1, 1, src_nchw=True)
    record = kernel_abi.Conv2dQ8(conv, in_scale, False, out_kind, out_scale)
    settings = kernel_abi.encode(record, content=[w, ws, b])
    dtype = np.int8 if out_kind == Q.INT8 else np.float32
    got = _call(
        "edgecv.xnnpack.conv2d_q8", [x_nchw, w, ws, b], settings, np.zeros(ref.shape, dtype)
    )
    _compare(got, _finish(ref, A.NONE, 0.0, 0, out_kind, out_scale), out_kind, "nchw")


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("out_kind", [Q.FLOAT, Q.UINT8, Q.INT8])
def test_dense_q8_matches_onednn_and_reference(signed, out_kind):
    """Per-output-channel weight scales (a qc8 1x1 convolution over M images of 1x1)."""
    from edgecv import _runtime

    rng = np.random.RandomState(7 + signed)
    m, kdim, n = 3, 40, 10
    xq = rng.randint(-128 if signed else 0, 128 if signed else 256, (m, kdim))
    w = rng.randint(-63, 64, (n, kdim)).astype(np.int8)
    ws = rng.uniform(0.001, 0.02, n).astype(np.float32)  # 20x apart: one scale would not do
    b = rng.uniform(-0.5, 0.5, n).astype(np.float32)
    in_scale = 0.05
    ref = (xq.astype(np.int64) @ w.T.astype(np.int64)) * (
        np.float64(np.float32(in_scale)) * ws.astype(np.float64)
    ) + b
    act = A.NONE if out_kind == Q.INT8 else A.RELU
    out_scale = float(np.abs(ref).max()) / 127 if out_kind != Q.FLOAT else 0.0
    record = kernel_abi.DenseQ8(
        kernel_abi.Dense(kernel_abi.Activation(act)), in_scale, signed, out_kind, out_scale
    )
    settings = kernel_abi.encode(record, content=[w, ws, b])
    x = xq.astype(np.int8 if signed else np.uint8)
    dtype = {Q.FLOAT: np.float32, Q.UINT8: np.uint8, Q.INT8: np.int8}[out_kind]
    want = _finish(ref, act, 0.0, 0, out_kind, out_scale)
    _runtime.kernel_layers(reset=True)
    got = _call("edgecv.xnnpack.dense_q8", [x, w, ws, b], settings, np.zeros((m, n), dtype))
    _compare(got, want, out_kind, "xnnpack vs reference")
    if not (signed and _runtime.int8_weight_bits() == 7):
        # (oneDNN 2.6's int8-input inner product on CPUs without VNNI does not halve the
        # weights as its convolution does, and edgecv.dnnl.dense_q8 refuses it: "oneDNN
        # rescales these int8 weights by 1, expected 0.5"; the reference still judges XNNPACK)
        onednn = _call("edgecv.dnnl.dense_q8", [x, w, ws, b], settings, np.zeros((m, n), dtype))
        _compare(got, onednn, out_kind, "xnnpack vs oneDNN")
    (built,) = [e for e in _runtime.kernel_layers() if e["kernel"] == "edgecv.xnnpack.dense_q8"]
    integer = out_kind != Q.FLOAT
    assert built["implementation"] == ("xnnpack qc8" if integer else "xnnpack f32 on int8 values")
    # uint8 tensors stored as int8, v - 128: the same values, bit for bit; oneDNN refuses them
    if signed and out_kind != Q.UINT8:
        return
    shifted = dataclasses.replace(
        record,
        input_as_int8=not signed,
        output_kind=Q.UINT8_AS_INT8 if out_kind == Q.UINT8 else out_kind,
    )
    settings = kernel_abi.encode(shifted, content=[w, ws, b])
    args = [_as_int8(x), w, ws, b]
    out = _as_int8(np.zeros((m, n), dtype))
    np.testing.assert_array_equal(
        _call("edgecv.xnnpack.dense_q8", args, settings, out), _as_int8(got)
    )
    with pytest.raises(ValueError, match="XNNPACK's only|unknown output kind 3"):
        _call("edgecv.dnnl.dense_q8", args, settings, out)


def test_q8_kernels_refuse_bad_input():
    import tvm

    conv = tvm.get_global_func("edgecv.xnnpack.conv2d_q8")
    f = lambda *s: tvm.runtime.tensor(np.zeros(s, np.float32))  # noqa: E731
    w = tvm.runtime.tensor(np.ones((1, 8, 3, 1, 1), np.int8))
    ones = tvm.runtime.tensor(np.ones(8, np.float32))
    conv1x1 = kernel_abi.Conv2d(1, 1, 0, 0, 0, 0, 1, 1, 1)

    def settings(key, scale=0.1, **quant):
        record = kernel_abi.Conv2dQ8(conv1x1, scale, True, **quant)
        return tvm.runtime.ShapeTuple(kernel_abi.encode(record, key=key))

    conv(f(1, 4, 4, 3), w, ones, f(8), settings(21), f(1, 4, 4, 8))
    with pytest.raises(ValueError, match="input scale must be positive"):
        conv(f(1, 4, 4, 3), w, ones, f(8), settings(22, scale=-1.0), f(1, 4, 4, 8))
    with pytest.raises(ValueError, match="weight scales must be positive"):
        conv(f(1, 4, 4, 3), w, f(8), f(8), settings(23), f(1, 4, 4, 8))
    with pytest.raises(TypeError, match="calibrated for int8"):
        u8 = tvm.runtime.tensor(np.zeros((1, 4, 4, 3), np.uint8))
        conv(u8, w, ones, f(8), settings(21), f(1, 4, 4, 8))
    with pytest.raises(TypeError, match="uint8"):  # the settings say the output is uint8
        conv(
            f(1, 4, 4, 3),
            w,
            ones,
            f(8),
            settings(24, output_kind=Q.UINT8, output_scale=0.1),
            f(1, 4, 4, 8),
        )
    with pytest.raises(ValueError, match="do not agree"):
        conv(f(1, 4, 4, 3), w, ones, f(8), settings(21), f(1, 4, 5, 8))
    with pytest.raises(ValueError, match="cannot be a uint8 one stored as int8"):
        conv(f(1, 4, 4, 3), w, ones, f(8), settings(25, input_as_int8=True), f(1, 4, 4, 8))
    unsigned = kernel_abi.encode(
        kernel_abi.Conv2dQ8(conv1x1, 0.1, False, input_as_int8=True), key=26
    )
    with pytest.raises(TypeError, match="calibrated for uint8 stored as int8"):
        u8 = tvm.runtime.tensor(np.zeros((1, 4, 4, 3), np.uint8))
        conv(u8, w, ones, f(8), tvm.runtime.ShapeTuple(unsigned), f(1, 4, 4, 8))
    with pytest.raises(ValueError, match="unknown output kind 4"):
        conv(
            f(1, 4, 4, 3),
            w,
            ones,
            f(8),
            settings(27, output_kind=4, output_scale=0.1),
            f(1, 4, 4, 8),
        )


def test_int8_graph_matches_onnxruntime_qdq(tmp_path):
    """test_int8.py's parity graph offloaded to XNNPACK: signed NCHW graph input, uint8
    (stored as int8, v - 128) through a max pool (TVM's, on the quantised tensor), a uint8
    residual, a grouped conv, uint8 and int8 tensors handed between int8 layers, a dense
    layer; against ONNX Runtime's literal QDQ result with 8-bit weights."""
    from test_int8 import run_qdq_graph

    stats, built = run_qdq_graph(tmp_path, "xnnpack", 8)
    assert stats["int8"] == 6 and stats["pool2d"] == 0
    assert stats["int8_outputs"] == 3  # c1 (through the max pool), c3, c4
    assert sorted(b["kernel"] for b in built) == ["edgecv.xnnpack.conv2d_q8"] * 5 + [
        "edgecv.xnnpack.dense_q8"
    ]
    # uint8 tensors between the int8 layers are stored as int8, v - 128, TVM's max pool
    # included ("u8 as s8"); layers quantising a float input read it as uint8 ("u8")
    assert [b["src"] for b in built].count("u8 as s8") == 2
    assert {b["src"] for b in built} == {"s8", "u8", "u8 as s8"}
    assert "u8" not in {b["dst"] for b in built} | {b["residual"] for b in built}
    assert [b["residual"] for b in built].count("u8 as s8") == 1  # c2 adds c1's uint8 output
    # c1, c3, c4 write quantised tensors with no residual: XNNPACK's qc8 operator
    assert [b["implementation"] for b in built].count("xnnpack qc8") == 3
