"""ResNeSt's split-attention conv beyond the catalog's settings (GluonCV's names all use radix
2 and cardinality 1): other radices and cardinalities, where the order of the gate's channels
matters, against GluonCV's own block; and the builders' refusals."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import randomize_weights

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("seeded_mxnet")]


@pytest.mark.parametrize(("radix", "cardinality"), [(1, 1), (2, 2), (4, 2), (3, 4)])
def test_split_attention_matches_gluoncv(radix, cardinality, tmp_path):
    """GluonCV's SplitAttentionConv's .params load and give the same output (the sigmoid gate
    at radix 1; the softmax over branches, channel-ordered per group, above)."""
    import mxnet as mx

    splat = pytest.importorskip("gluoncv.nn.splat", reason="GluonCV reference not installed")
    from edgecv.zoo.resnest import SplitAttentionConv

    channels = 8 * radix * cardinality  # the 3x3 conv takes as many channels as it gives
    ref = splat.SplitAttentionConv(
        channels, 3, 2, 1, groups=cardinality, radix=radix, in_channels=channels, use_bias=False
    )
    ref.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (2, channels, 12, 12)))
    ref(x)
    randomize_weights(ref, seed=1)
    path = tmp_path / "splat.params"
    ref.save_parameters(str(path))

    net = SplitAttentionConv(channels, 2, 1, radix, cardinality)
    net.load_parameters(str(path))
    expected = ref(x).asnumpy()
    net.hybridize()
    got = net(x).asnumpy()
    assert got.shape == expected.shape == (2, channels, 6, 6)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.integration
def test_builders_refuse_bad_settings():
    from edgecv.zoo.resnest import ResNeSt, SplitAttentionConv
    from edgecv.zoo.segmentation import SegmentationModel

    with pytest.raises(ValueError, match="ResNeSt depth must be one of .*269"):
        ResNeSt(34)
    with pytest.raises(ValueError, match="do not make whole groups"):
        SplitAttentionConv(30, radix=2, cardinality=4)
    with pytest.raises(ValueError, match="do not make whole groups"):
        SplitAttentionConv(32, radix=0)
    with pytest.raises(ValueError, match="backbone must be one of .*resnest"):
        SegmentationModel("deeplab", 50, 150, backbone="resnext")
