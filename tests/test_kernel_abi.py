"""The kernel settings ABI: records encoded in Python (edgecv.compile.kernel_abi) decode in
C++ (runtime_cpp/src/kernel_abi.h) to the same fields by name; the layout is version 3's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgecv.compile import kernel_abi as abi
from edgecv.compile.kernel_abi import Act, Pool, Quant, Residual

pytestmark = pytest.mark.cpp

# Distinctive values (no two fields alike, floats exact in float32) so that a field read from
# another position cannot pass.
CONV = abi.Conv2d(
    stride_h=2,
    stride_w=3,
    pad_top=4,
    pad_left=5,
    pad_bottom=6,
    pad_right=7,
    dilation_h=8,
    dilation_w=9,
    groups=10,
    act=abi.Activation(Act.CLIP, -0.375, 6.5),
    residual=Residual.ACT_THEN_ADD,
    src_nchw=True,
    dst_nchw=False,
)
RECORDS = {
    "conv2d": CONV,
    "conv2d_transpose": abi.Conv2d(1, 2, 3, 4, 5, 6, 7, 8, 9, abi.Activation(Act.RELU, 0.125)),
    "conv2d_q8": abi.Conv2dQ8(
        CONV, 0.0625, False, Quant.UINT8_AS_INT8, 0.25, Quant.INT8, 1.5, input_as_int8=True
    ),
    "dense": abi.Dense(abi.Activation(Act.RELU, 0.1875, 0.0)),
    "dense_q8": abi.DenseQ8(abi.Dense(abi.Activation(Act.CLIP, 1.25, 2.75)), 3.5, False, 2, 0.5),
    "pool2d": abi.Pool2d(Pool.AVG_EXCLUDE_PAD, 3, 4, 5, 6, 7, 8, 9, 10),
}


def _bits(x: float) -> int:
    return int(np.float32(x).view(np.uint32))


@pytest.mark.unit
def test_layout_is_version_3s():
    """The positions artifacts of settings version 3 hold: changing them needs a new
    version (kernel_abi.VERSION and kSettingsVersion)."""
    assert abi.VERSION == 3
    conv = [3, 2, 3, 4, 5, 6, 7, 8, 9, 10, 2, _bits(-0.375), _bits(6.5), 2, 1, 0]
    assert abi.encode(CONV, key=99) == [*conv, 99]
    q8 = [_bits(0.0625), 0, 3, _bits(0.25), 2, _bits(1.5), 1]
    assert abi.encode(RECORDS["conv2d_q8"], key=98) == [*conv, *q8, 98]
    dense = [3, 1, _bits(0.1875), 0]
    assert abi.encode(RECORDS["dense"], key=97) == [*dense, 97]
    dense_q8 = [3, 2, _bits(1.25), _bits(2.75), _bits(3.5), 0, 2, _bits(0.5), 0]
    assert abi.encode(RECORDS["dense_q8"], key=96) == [*dense_q8, 96]
    assert abi.encode(RECORDS["pool2d"], key=95) == [3, 2, 3, 4, 5, 6, 7, 8, 9, 10, 95]
    for kind, record in RECORDS.items():
        assert len(abi.encode(record)) == abi.size(kind)


@pytest.mark.unit
def test_content_key():
    """The key covers the fields and the layer's constants, and is a positive int64."""
    w = np.arange(6, dtype=np.float32)
    key = abi.encode(CONV, content=[w])[-1]
    assert 0 <= key < 2**62
    assert abi.encode(CONV, content=[w])[-1] == key
    assert abi.encode(CONV, content=[w * 2])[-1] != key
    other = dataclasses.replace(CONV, groups=11)
    assert abi.encode(other, content=[w])[-1] != key


@pytest.mark.unit
@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_python_round_trip(kind):
    values = abi.encode(RECORDS[kind], key=1234)
    assert abi.decode(kind, values) == (RECORDS[kind], 1234)


@pytest.mark.unit
def test_python_decode_refuses_other_layouts():
    values = abi.encode(RECORDS["dense"], key=1)
    with pytest.raises(ValueError, match="version 2"):
        abi.decode("dense", [2, *values[1:]])
    with pytest.raises(ValueError, match="expected 5"):
        abi.decode("dense", [*values, 0])


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_cpp_decodes_each_field_by_name(kind):
    """What Python encodes, the C++ kernels read: every field by name, nested records too."""
    from edgecv import _runtime

    record = RECORDS[kind]
    values = abi.encode(record, content=[np.ones(3, np.float32)])
    decoded = _runtime.decode_kernel_settings(kind, values)
    assert decoded == abi.as_dict(record, values[-1])
    # the same names on both sides (not only equal values)
    assert decoded.keys() == abi.as_dict(record, 0).keys()


def test_cpp_refuses_other_versions_and_lengths():
    from edgecv import _runtime
    from edgecv.errors import ArtifactError, InvalidInputError

    values = abi.encode(RECORDS["conv2d"], key=5)
    with pytest.raises(ArtifactError, match="version 2, this runtime reads version 3"):
        _runtime.decode_kernel_settings("conv2d", [2, *values[1:]])
    with pytest.raises(ArtifactError, match="16 settings values, expected 17"):
        _runtime.decode_kernel_settings("conv2d", values[:-1])
    with pytest.raises(ArtifactError, match="expected 24"):  # float settings to the int8 kernel
        _runtime.decode_kernel_settings("conv2d_q8", values)
    with pytest.raises(ArtifactError, match="no settings"):
        _runtime.decode_kernel_settings("pool2d", [])
    with pytest.raises(InvalidInputError, match="unknown kernel kind"):
        _runtime.decode_kernel_settings("conv3d", values)


def test_kernels_refuse_other_versions_and_lengths():
    """A compiled graph's call with settings of another layout: a ValueError from the kernel
    that names it, before any tensor is touched."""
    from edgecv.compile import local_kernel_libraries

    if "dnnl" not in local_kernel_libraries():
        pytest.skip("runtime built without oneDNN")
    import tvm

    dense = tvm.get_global_func("edgecv.dnnl.dense")
    t = lambda *s: tvm.runtime.tensor(np.zeros(s, np.float32))  # noqa: E731
    values = abi.encode(abi.Dense(), key=3)
    dense(t(2, 4), t(3, 4), t(3), tvm.runtime.ShapeTuple(values), t(2, 3))  # fits: runs
    with pytest.raises(ValueError, match=r"edgecv\.dnnl\.dense: settings of version 1"):
        dense(t(2, 4), t(3, 4), t(3), tvm.runtime.ShapeTuple([1, *values[1:]]), t(2, 3))
    with pytest.raises(ValueError, match=r"edgecv\.dnnl\.dense: 6 settings values, expected 5"):
        dense(t(2, 4), t(3, 4), t(3), tvm.runtime.ShapeTuple([*values, 0]), t(2, 3))
