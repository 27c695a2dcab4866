"""Segmentation and pose end to end: compiled artifacts through the C++ runtime against the
MXNet model, with NumPy reference post-processing (written here, independent of the C++).

Random weights would give saturated, near-constant outputs; as for detection, BatchNorm
statistics are taken from a random batch and the last layer is scaled so that scores vary
from pixel to pixel (checked: several classes in the label map, peaks that differ)."""

from __future__ import annotations

import numpy as np
import pytest

import edgecv
from edgecv import _runtime
from edgecv.compile import CompileOptions, compile_model
from edgecv.errors import InvalidInputError
from edgecv.pose_pipeline import estimate_poses
from edgecv.runtime import PoseResult, Predictor, SegmentationResult, read_image

from conftest import (
    SAMPLE_IMAGE,
    calibrate_batchnorm,
    normalise_gates,
    scale_last_layer,
    zoo_models,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("seeded_mxnet")]

SEGMENTERS = zoo_models("segmentation")
POSERS = zoo_models("pose", ci=["simple_pose_resnet18_v1b", "mobile_pose_mobilenetv2_1.0"])


def _last_conv(net):
    if hasattr(net, "head"):
        return net.head.block[-1]
    return getattr(net, "final_layer", None) or net.upsampling[-1]


def _trained_like(name: str, shape: tuple[int, ...], directory, seed: int = 0):
    """A .params file with BatchNorm statistics from a random batch, attention gates of unit
    pre-activations (ResNeSt's: random ones make deeplab_resnest50_ade's float32 and
    float64 outputs differ by 8e-5 of their scale, 1e-6 once normalised) and outputs of a
    few units' spread; returns (path, the reference network loaded from it)."""
    import mxnet as mx

    net = edgecv.get_model(name)
    net.prepare_deploy(shape)
    x = mx.nd.array(np.random.RandomState(seed).uniform(-2, 2, (2, *shape[1:])))
    net(x)
    calibrate_batchnorm(net, x, seed)
    normalise_gates(net, x)
    scale_last_layer(net, _last_conv(net), x)
    path = directory / f"{name}.params"
    net.save_parameters(str(path))
    reference = edgecv.get_model(name, pretrained=path)
    reference.prepare_deploy(shape)
    return path, reference


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))


def resize_scores(scores: np.ndarray, width: int, height: int, scale, offset) -> np.ndarray:
    """(C, H, W) scores sampled at image pixel centres mapped through net = img*scale+offset
    (bilinear, OpenCV conventions, clamped); NaN where a pixel falls outside the input."""

    def taps(n_out, s, o, n_in):
        f = (np.arange(n_out) + 0.5) * s + o
        inside = (f >= 0) & (f <= n_in)
        f = f - 0.5
        i0 = np.floor(f).astype(int)
        w = f - i0
        w[i0 < 0], i0[i0 < 0] = 0.0, 0
        w[i0 >= n_in - 1], i0[i0 >= n_in - 1] = 0.0, n_in - 1
        return i0, np.minimum(i0 + 1, n_in - 1), w, inside

    _, h_in, w_in = scores.shape
    x0, x1, wx, xin = taps(width, scale[0], offset[0], w_in)
    y0, y1, wy, yin = taps(height, scale[1], offset[1], h_in)
    s = scores.astype(np.float64)
    top = s[:, y0][:, :, x0] * (1 - wx) + s[:, y0][:, :, x1] * wx
    bottom = s[:, y1][:, :, x0] * (1 - wx) + s[:, y1][:, :, x1] * wx
    out = top * (1 - wy[:, None]) + bottom * wy[:, None]
    out[:, ~yin, :] = np.nan
    out[:, :, ~xin] = np.nan
    return out


@pytest.mark.parity
@pytest.mark.parametrize("name", SEGMENTERS)
def test_segmentation_parity(name, tmp_path):
    import mxnet as mx

    shape = (1, 3, 64, 64)  # PSP at 8x8 features: bins 3 and 6 take the per-bin path
    params, reference = _trained_like(name, shape, tmp_path)
    art = compile_model(
        CompileOptions(
            model=name, input_size=64, pretrained=str(params), out_dir=str(tmp_path / "a")
        )
    )
    predictor = Predictor(art)
    x = np.random.RandomState(8).uniform(-2, 2, shape).astype(np.float32)
    ref = reference(mx.nd.array(x)).asnumpy()
    got = predictor.run_tensor(x)
    assert isinstance(got, SegmentationResult)
    assert _relative_error(got.outputs[0], ref) <= 1e-4
    ref_labels = ref[0].argmax(axis=0)
    assert len(np.unique(ref_labels)) >= 3, "label map too uniform to prove anything"
    assert (got.labels == ref_labels).mean() >= 0.999

    # a real image: labels at the image's size vs NumPy resizing of MXNet's scores
    image = read_image(SAMPLE_IMAGE, color=True)
    _, tensor, geometry = predictor.preprocess(image)
    scores = reference(mx.nd.array(tensor)).asnumpy()[0]
    h, w = image.shape[:2]
    resized = resize_scores(scores, w, h, geometry["scale"], geometry["offset"])
    assert not np.isnan(resized).any()  # a letterbox covers the whole image
    result = predictor.run(image)
    assert result.labels.shape == (h, w)
    assert (result.labels == resized.argmax(axis=0)).mean() >= 0.999
    assert result.colorize().shape == (h, w, 3)


def decode_reference(heatmaps: np.ndarray, crop) -> tuple[np.ndarray, np.ndarray]:
    """SimpleBaseline's decode in NumPy: peak, quarter offset toward the higher neighbour
    (1 < px < W-1 and 1 < py < H-1), mapped through the crop."""
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    idx = flat.argmax(axis=1)
    xy = np.stack([idx % w, idx // w], axis=1).astype(np.float64)
    for j in range(k):
        px, py = int(xy[j, 0]), int(xy[j, 1])
        m = heatmaps[j]
        if 1 < px < w - 1 and 1 < py < h - 1:
            xy[j, 0] += 0.25 * np.sign(m[py, px + 1] - m[py, px - 1])
            xy[j, 1] += 0.25 * np.sign(m[py + 1, px] - m[py - 1, px])
    x0, y0, cw, ch = crop
    xy[:, 0] = x0 + xy[:, 0] * cw / w
    xy[:, 1] = y0 + xy[:, 1] * ch / h
    return xy, flat.max(axis=1)


@pytest.mark.parity
@pytest.mark.parametrize("name", POSERS)
def test_pose_parity(name, tmp_path):
    import mxnet as mx

    shape = (1, 3, 128, 96)
    params, reference = _trained_like(name, shape, tmp_path)
    art = compile_model(
        CompileOptions(
            model=name, input_size=128, pretrained=str(params), out_dir=str(tmp_path / "a")
        )
    )
    predictor = Predictor(art)
    image = read_image(SAMPLE_IMAGE, color=True)
    h, w = image.shape[:2]
    # one box inside, one reaching past the image's corner (the crop reads zeros there)
    boxes = np.array([[60, 30, 260, 290], [w - 80, h - 120, w + 40, h + 30]], np.float32)
    result = predictor.run_pose(image, boxes)
    assert isinstance(result, PoseResult)
    assert result.keypoints.shape == (2, 17, 2) and result.scores.shape == (2, 17)
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    spread = []
    for i, box in enumerate(boxes):
        crop = _runtime.person_crop(box.tolist(), 96, 128, 1.25, w, h)
        np.testing.assert_allclose(result.crops[i], crop, rtol=1e-6)
        # the crop's pixels come from the C++ crop (checked against cv2.warpAffine in
        # test_dense_postprocess.py); network and decode are what this test compares
        patch = _runtime.crop_resize(np.ascontiguousarray(image[..., ::-1]), list(crop), 96, 128)
        x = ((patch.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]
        heatmaps = reference(mx.nd.array(x)).asnumpy()[0]
        xy, peak = decode_reference(heatmaps, crop)
        np.testing.assert_allclose(result.keypoints[i], xy, atol=0.5)
        np.testing.assert_allclose(
            result.scores[i], peak, rtol=1e-3, atol=1e-4 * np.abs(heatmaps).max()
        )
        spread.append(len({tuple(p) for p in np.round(xy)}))
    assert _relative_error(result.outputs[0], heatmaps[None]) <= 1e-4  # the last person's
    assert min(spread) >= 5, "keypoints collapsed onto a few places: nothing proven"


@pytest.fixture(scope="module")
def pose_artifact(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pose")
    return compile_model(
        CompileOptions(model="mobile_pose_mobilenet1.0", input_size=128, out_dir=str(tmp / "a"))
    )


def test_pose_bad_input(pose_artifact):
    predictor = Predictor(pose_artifact)
    image = read_image(SAMPLE_IMAGE, color=True)
    h, w = image.shape[:2]
    empty = predictor.run_pose(image, np.zeros((0, 4)))
    assert empty.keypoints.shape == (0, 17, 2) and empty.scores.shape == (0, 17)
    with pytest.raises(InvalidInputError, match=r"box 1: .*outside"):
        predictor.run_pose(image, [[10, 10, 50, 80], [w + 5, 0, w + 50, 40]])
    with pytest.raises(InvalidInputError, match=r"box 0: .*no area"):
        predictor.run_pose(image, [[10, 10, 10, 80]])
    with pytest.raises(InvalidInputError, match="non-finite"):
        predictor.run_pose(image, [[10, np.nan, 50, 80]])
    with pytest.raises(InvalidInputError, match=r"\(N, 4\)"):
        predictor.run_pose(image, [[10, 10, 50]])
    with pytest.raises(InvalidInputError, match="2 images but 1 box lists"):
        estimate_poses(predictor, [image, image], [[[10, 10, 50, 80]]])
    both = estimate_poses(predictor, [image, image], [[[10, 10, 50, 80]], []])
    assert [len(r.keypoints) for r in both] == [1, 0]
    # the whole image as the person when no box is given
    whole = predictor.run(image)
    assert whole.keypoints.shape == (1, 17, 2)
    x0, y0, cw, ch = whole.crops[0]
    assert cw >= w and ch >= h  # the image fits in its crop (enlarged to the aspect, x1.25)
    kx, ky = whole.keypoints[0, :, 0], whole.keypoints[0, :, 1]
    assert np.all((kx >= x0) & (kx <= x0 + cw) & (ky >= y0) & (ky <= y0 + ch))


def test_person_boxes_need_a_pose_model(small_artifact):
    with pytest.raises(InvalidInputError, match="pose model"):
        Predictor(small_artifact).run_pose(np.zeros((8, 8, 3), np.uint8), [[0, 0, 4, 4]])


def test_cli_run_draws_poses_and_reports_keypoints(pose_artifact, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    import cv2

    out = tmp_path / "skeleton.png"
    # the venv's console script, run away from the source tree (whose edgecv/ has no
    # compiled runtime module)
    exe = Path(sys.executable).parent / "edgecv"
    cmd = [str(exe), "run", str(pose_artifact), str(SAMPLE_IMAGE)]
    done = subprocess.run(
        [*cmd, "--boxes", "40,20,240,280;200,40,400,290", "--json", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    people = json.loads(done.stdout)[0]["people"]
    assert len(people) == 2 and len(people[0]["keypoints"]) == 17
    assert people[0]["keypoints"][0]["joint"] == "nose"
    assert cv2.imread(str(out)).shape == read_image(SAMPLE_IMAGE, color=True).shape
    bad = subprocess.run(
        [*cmd, "--boxes", "40,20,240"], capture_output=True, text=True, cwd=tmp_path
    )
    assert bad.returncode != 0 and "x1,y1,x2,y2" in bad.stderr
