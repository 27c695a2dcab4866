"""Every registered classification model, at a small input size, through the whole chain:
MXNet (reference) vs ONNX Runtime vs the compiled artifact in the C++ runtime (bindings).

(TVM's own Python VM is not a leg here: in TVM 0.27 each ``load_module`` of a library keeps
its embedded weights alive, ~the library's size per load, and the C++ engine runs the same
library anyway. tests/test_offload.py runs one library through it.)"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import edgecv
from edgecv.compile import CompileOptions, compile_model
from edgecv.runtime import Predictor

from conftest import PARITY_SIZE, random_params_file, zoo_models

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("seeded_mxnet")]
RTOL = 1e-4  # of the output scale
# families whose stem leaves nothing of a 64x64 input: their parity size
MIN_SIZE = {"inception_v3": 96}


def _top5(v: np.ndarray) -> list[int]:
    return [int(i) for i in np.argsort(-v.ravel(), kind="stable")[:5]]


@pytest.mark.parametrize("name", zoo_models("classification"))
def test_chain_parity(name, tmp_path):
    import mxnet as mx

    spec = edgecv.zoo.MODELS.get(name)
    # (CIFAR nets at their own 32x32: a quarter of the work)
    size = MIN_SIZE.get(spec.family, min(PARITY_SIZE, *spec.data.input_size))
    params = random_params_file(name, tmp_path, seed=7, size=size)
    art = compile_model(
        CompileOptions(
            model=name,
            input_size=size,
            pretrained=str(params),
            out_dir=str(tmp_path / "art"),
        )
    )
    x = np.random.RandomState(11).uniform(-2, 2, (1, 3, size, size)).astype(np.float32)

    net = edgecv.get_model(name, pretrained=params)
    reference = net(mx.nd.array(x)).asnumpy()
    scale = float(np.abs(reference).max())
    assert scale > 1e-3, "degenerate reference output: the test would prove nothing"

    onnx_out = ort.InferenceSession(
        str(art / "model.onnx"), providers=["CPUExecutionProvider"]
    ).run(None, {"data": x})[0]
    cpp = Predictor(art).run_tensor(x, top_k=5)
    cpp_out = cpp.outputs[0]

    for label, out in (("onnxruntime", onnx_out), ("c++ runtime", cpp_out)):
        err = float(np.abs(out - reference).max())
        assert err <= RTOL * scale, f"{label}: max |Δ| {err:.3g} vs MXNet (scale {scale:.3g})"
        assert _top5(out) == _top5(reference), label
    assert [c.index for c in cpp.top] == _top5(reference)
    probs = np.exp(reference - reference.max())
    np.testing.assert_allclose(
        cpp.probabilities, (probs / probs.sum()).ravel(), rtol=1e-3, atol=1e-7
    )
