"""GluonCV parameter files load into edgecv's zoo and give the same outputs.

GluonCV is a test-only reference (installed by `make test`); it builds each model, its
weights are randomised and saved, and edgecv loads that file by the same model name.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgecv

from conftest import SWEEP, randomize_weights, zoo_models

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("seeded_mxnet")]
gluoncv = pytest.importorskip(
    "gluoncv", reason="GluonCV reference not installed (make test installs it)"
)


def _in_gluoncv(task: str) -> list[str]:
    """Zoo names GluonCV also has: not edgecv's own trained variants (shipped weights)."""
    from edgecv.zoo.catalog import MODELS

    return [n for n in zoo_models(task) if not MODELS.get(n).weights]


# families whose GluonCV network ends in a fixed-size average pool (ours pool globally):
# compared at the one input size GluonCV's accepts
_REFERENCE_SIZE = {"squeezenet": 224, "densenet": 224, "googlenet": 224, "inception_v3": 299}
# ... and whose masks also resize to sizes fixed for that input
_REFERENCE_SIZE.update({"residual_attention": 224, "cifar_residual_attention": 32})


def _parameter_shapes(net) -> dict[str, tuple[int, ...]]:
    """Structural parameter names (as save_parameters writes them) and their shapes."""
    return {k: p.shape for k, p in net._collect_params_with_prefix().items()}


@pytest.mark.parametrize("name", _in_gluoncv("classification"))
def test_gluoncv_params_load_and_agree(name, tmp_path):
    """The same parameter names and shapes as GluonCV's model; its file loads and gives the
    same scores."""
    import mxnet as mx

    spec = edgecv.zoo.MODELS.get(name)
    size = _REFERENCE_SIZE.get(spec.family, 64)
    ref = gluoncv.model_zoo.get_model(name, pretrained=False)  # (its "e" ResNeXts need it)
    ref.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (1, 3, size, size)))
    ref(x)
    randomize_weights(ref, seed=3)
    path = tmp_path / f"{name}.params"
    ref.save_parameters(str(path))

    net = edgecv.get_model(name, pretrained=path)
    expected, got = ref(x).asnumpy(), net(x).asnumpy()
    assert _parameter_shapes(net) == _parameter_shapes(ref)
    assert got.shape == expected.shape == (1, len(edgecv.zoo.label_set(spec.classes)))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


# SSD's feature extractors other than the representative's: each a structure of its own
# (GluonCV's v1b SSD features; a v2 backbone tapped inside residual units; the "lite" head
# with half-width transitions, 1x1 predictors and other priors), checked here in the ordinary
# run too. The compiled graphs use no operator the representative's does not.
_SSD_FORMS = (
    "ssd_300_resnet34_v1b_voc",
    "ssd_512_resnet101_v2_voc",
    "ssd_300_mobilenet1.0_lite_coco",
)
# GluonCV names whose SSD config exists but which the catalog does not list yet (see there)
_UNLISTED_SSD = {"ssd_512_resnet101_v2_voc": "resnet101_v2_512"}
_DETECTORS = _in_gluoncv("detection")
_DETECTORS += [n for n in _SSD_FORMS if n not in _DETECTORS and not SWEEP]


def _edgecv_detector(name: str, pretrained=None):
    if name not in _UNLISTED_SSD:
        return edgecv.get_model(name, pretrained=pretrained)
    from edgecv.zoo.ssd import ssd

    net = ssd(_UNLISTED_SSD[name], classes=20, dataset=name.rsplit("_", 1)[1])
    if pretrained is None:
        net.initialize()
    else:
        net.load_parameters(str(pretrained))
    return net


def _randomize_symbol_batchnorm(net, seed: int) -> None:
    """Statistics for the BatchNorm layers of GluonCV's symbol blocks (named moving_*, which
    randomize_weights leaves at the Normal init: variances near 0 blow the SSD extra layers
    up to inf boxes)."""
    import mxnet as mx

    rng = np.random.RandomState(seed)
    for name, p in net.collect_params().items():
        if name.endswith("moving_var"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 2.0, p.shape)))
        elif name.endswith("moving_mean"):
            p.set_data(mx.nd.array(rng.uniform(-0.5, 0.5, p.shape)))


@pytest.mark.parametrize("name", _DETECTORS)
def test_gluoncv_detector_params_load_and_agree(name, tmp_path):
    """Same parameter file, same final detections (ids, scores, boxes) as GluonCV's forward,
    within 1e-4 of each output's scale (at least 1)."""
    import mxnet as mx

    ref = gluoncv.model_zoo.get_model(name, pretrained_base=False)
    # GluonCV's SSD expander is a symbol block whose BN gamma rejects Xavier
    ref.initialize(mx.init.Normal(0.03) if name.startswith("ssd") else mx.init.Xavier())
    size = 300 if name.startswith("ssd_300") else 512 if name.startswith("ssd_512_vgg") else 256
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, (1, 3, size, size)))
    ref(x)
    randomize_weights(ref, seed=3)
    _randomize_symbol_batchnorm(ref, seed=4)
    path = tmp_path / f"{name}.params"
    ref.save_parameters(str(path))

    net = _edgecv_detector(name, pretrained=path)
    for expected, got in zip(ref(x), net(x), strict=True):
        expected = expected.asnumpy()
        finite = np.abs(expected[np.isfinite(expected)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        np.testing.assert_allclose(got.asnumpy(), expected, rtol=0, atol=1e-4 * scale)  # NaN == NaN
    if name.startswith("ssd"):  # freshly generated priors equal GluonCV's
        fresh = _edgecv_detector(name)
        fresh(x)
        for ours, theirs in zip(fresh.anchor_generators, ref.anchor_generators, strict=True):
            np.testing.assert_allclose(
                ours.anchors.data().asnumpy(), theirs.anchors.data().asnumpy(), rtol=1e-6
            )


@pytest.mark.parametrize("name", _in_gluoncv("segmentation") + _in_gluoncv("pose"))
def test_gluoncv_dense_params_load_and_agree(name, tmp_path):
    """Segmentation: GluonCV's single-scale prediction (main head, at the input size) from
    the same file; pose: the same heatmaps."""
    import mxnet as mx

    segmentation = edgecv.zoo.MODELS.get(name).task == "segmentation"
    shape = (1, 3, 64, 64) if segmentation else (1, 3, 128, 96)
    extra = {"crop_size": 64, "base_size": 72} if segmentation else {}
    ref = gluoncv.model_zoo.get_model(name, pretrained_base=False, **extra)
    ref.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(1).uniform(-1, 1, shape))

    def forward(net):
        return (net.demo(x) if segmentation else net(x)).asnumpy()

    forward(ref)
    randomize_weights(ref, seed=3)
    path = tmp_path / f"{name}.params"
    ref.save_parameters(str(path))

    net = edgecv.get_model(name, pretrained=path)
    net.prepare_deploy(shape)
    expected, got = forward(ref), net(x).asnumpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
