"""Residual Attention Networks beyond the catalog check: each attention module (3, 2, 1 and 0
pooling levels, the 452-layer nets' 2/4/3 units included) against GluonCV's own stage
classes; input sizes other than GluonCV's; the builders' and the deploy path's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import randomize_weights

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("seeded_mxnet")]


@pytest.mark.parametrize("levels", [3, 2, 1, 0])
@pytest.mark.parametrize("units", [(1, 2, 1), (2, 4, 3)])
def test_attention_module_matches_gluoncv(levels, units, tmp_path):
    """GluonCV's AttentionModule_stage{4 - levels} (masks resized to its fixed sizes, here
    those of a 16x16 input) and ours (masks doubled per step) from one .params file."""
    import mxnet as mx

    ran = pytest.importorskip(
        "gluoncv.model_zoo.residual_attentionnet", reason="GluonCV reference not installed"
    )
    from edgecv.zoo.residual_attention import AttentionModule

    channels, size = 16, 16
    sizes = {3: {"size1": 16, "size2": 8, "size3": 4}, 2: {"size1": 16, "size2": 8}}
    sizes[1] = {"size1": 16}
    stage = getattr(ran, f"AttentionModule_stage{4 - levels}")
    ref = stage(channels, scale=units, **sizes.get(levels, {}))
    ref.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (2, channels, size, size)))
    ref(x)
    randomize_weights(ref, seed=3)
    path = tmp_path / "module.params"
    ref.save_parameters(str(path))

    net = AttentionModule(channels, levels, units)
    net.load_parameters(str(path))
    expected = ref(x).asnumpy()
    net.hybridize()
    got = net(x).asnumpy()
    assert got.shape == expected.shape == (2, channels, size, size)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.integration
def test_other_input_sizes_and_refusals():
    """GluonCV's nets run at 224 (32) only; ours at any side that is a multiple of 32 (4),
    and the deploy path refuses the rest with a clear message."""
    import mxnet as mx

    import edgecv
    from edgecv.deploy.zoo_bundle import resolve_data
    from edgecv.errors import InvalidInputError
    from edgecv.zoo.residual_attention import ResidualAttentionNet

    for name, side in (("residualattentionnet56", 96), ("cifar_residualattentionnet56", 36)):
        net = edgecv.get_model(name)
        out = net(mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3, side, side))))
        assert out.shape == (1, len(net.edgecv_meta.classes))
        spec = edgecv.zoo.MODELS.get(name)
        assert resolve_data(spec, side).input_size == (side, side)
        with pytest.raises(InvalidInputError, match=f"multiples of {32 if side == 96 else 4}"):
            resolve_data(spec, side + 2)
    with pytest.raises(ValueError, match="depth 50: GluonCV's are .*452"):
        ResidualAttentionNet(50)
