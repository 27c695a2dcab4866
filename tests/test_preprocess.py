"""The C++ preprocessing (through the bindings) against an OpenCV/NumPy reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecv import _runtime
from edgecv.artifact import read_manifest
from edgecv.runtime import Predictor, read_image

from conftest import SAMPLE_IMAGE

pytestmark = pytest.mark.parity


def reference_preprocess(bgr: np.ndarray, doc: dict) -> tuple[np.ndarray, np.ndarray]:
    """resize short side (cv2 INTER_LINEAR, long side truncated) → center crop → RGB → normalise."""
    ops = {op["op"]: op for op in doc["preprocess"]}
    short = ops["resize_short"]["size"]
    ch, cw = ops["center_crop"]["size"]
    h, w = bgr.shape[:2]
    nw, nh = (short, h * short // w) if w < h else (w * short // h, short)
    resized = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    y0, x0 = (nh - ch) // 2, (nw - cw) // 2
    crop = resized[y0 : y0 + ch, x0 : x0 + cw, ::-1]  # BGR → RGB
    mean = np.array(ops["normalize"]["mean"], np.float32)
    std = np.array(ops["normalize"]["std"], np.float32)
    tensor = ((crop.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(crop), tensor


@pytest.mark.parametrize(
    "shape", [(300, 451), (451, 300), (64, 64), (37, 1000), (1000, 37), (120, 90)]
)
def test_cpp_preprocess_matches_opencv(small_artifact, shape):
    doc = read_manifest(small_artifact)
    photo = read_image(SAMPLE_IMAGE)
    image = cv2.resize(photo, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    geometry, tensor, _ = Predictor(small_artifact).preprocess(image, order="bgr")
    ref_geometry, ref_tensor = reference_preprocess(image, doc)
    assert geometry.shape == ref_geometry.shape
    assert np.abs(geometry.astype(int) - ref_geometry.astype(int)).max() <= 1  # 1 gray level
    std = np.array([op for op in doc["preprocess"] if op["op"] == "normalize"][0]["std"])
    assert tensor.shape == ref_tensor.shape
    assert np.abs(tensor - ref_tensor).max() <= 1.0 / std.min() + 1e-5


def test_gray_and_alpha_match_the_opencv_reference(small_artifact):
    """Gray (H, W) is replicated and BGRA loses its alpha, as cv2.cvtColor does."""
    doc = read_manifest(small_artifact)
    bgr = cv2.resize(read_image(SAMPLE_IMAGE), (150, 100), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = np.arange(150, dtype=np.uint8)  # alpha is dropped, not composited
    p = Predictor(small_artifact)
    for image, converted in ((gray, cv2.COLOR_GRAY2BGR), (bgra, cv2.COLOR_BGRA2BGR)):
        geometry, tensor, _ = p.preprocess(image, order="bgr")
        ref_geometry, _ = reference_preprocess(cv2.cvtColor(image, converted), doc)
        assert np.abs(geometry.astype(int) - ref_geometry.astype(int)).max() <= 1
        np.testing.assert_array_equal(tensor, p.preprocess(cv2.cvtColor(image, converted))[1])


def test_rgb_and_bgr_inputs_agree(small_artifact):
    bgr = read_image(SAMPLE_IMAGE)
    p = Predictor(small_artifact)
    _, from_bgr, _ = p.preprocess(bgr, order="bgr")
    _, from_rgb, _ = p.preprocess(np.ascontiguousarray(bgr[:, :, ::-1]), order="rgb")
    np.testing.assert_array_equal(from_bgr, from_rgb)


def test_non_contiguous_views_are_accepted(small_artifact):
    bgr = read_image(SAMPLE_IMAGE)
    view = bgr[10:200:1, 5:300]  # a strided view, not a copy
    p = Predictor(small_artifact)
    np.testing.assert_array_equal(
        p.preprocess(view)[1], p.preprocess(np.ascontiguousarray(view))[1]
    )


@pytest.mark.parametrize(
    "src,dst", [((37, 53), (100, 80)), ((300, 451), (64, 96)), ((5, 7), (5, 7))]
)
def test_resize_bilinear_matches_cv2(src, dst):
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (*src, 3), dtype=np.uint8)
    ours = _runtime.resize_bilinear(img, dst[1], dst[0])
    ref = cv2.resize(img, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR)
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


def test_softmax_and_topk_bindings():
    p = np.array(_runtime.softmax([1.0, 2.0, 3.0]))
    ref = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(p, ref, rtol=1e-6)
    assert _runtime.topk([0.2, 0.9, 0.5], 2, ["a", "b", "c"]) == [
        (1, pytest.approx(0.9), "b"),
        (2, pytest.approx(0.5), "c"),
    ]
