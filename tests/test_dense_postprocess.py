"""The C++ dense-prediction post-processing (segmentation labels, colour palette, pose crop,
crop resampling, heatmap decoding) against independent NumPy/OpenCV references and
hand-computed values."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecv import _runtime
from edgecv.errors import InvalidInputError

pytestmark = pytest.mark.cpp


# ------------------------------------------------------------------ helpers


def smooth_scores(
    rng: np.random.Generator, c: int, h: int, w: int, sigma: float = 2.0
) -> np.ndarray:
    """(1, C, H, W) float32 class scores: blurred noise, so class regions are blobs."""
    planes = [
        cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        for _ in range(c)
    ]
    return np.stack(planes)[None].astype(np.float32)


def _taps(f: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR taps of sample positions f: clamped at both borders."""
    i = np.floor(f).astype(np.int64)
    w = f - i
    low = i < 0
    i[low], w[low] = 0, 0.0
    high = i >= size - 1
    i[high], w[high] = size - 1, 0.0
    return i, np.minimum(i + 1, size - 1), w


def reference_segment(
    scores: np.ndarray, image_w: int, image_h: int, scale: tuple, offset: tuple
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference of the stated mapping: image pixel centre (x + 0.5) → network
    coordinate (x + 0.5) * s + o, sampled bilinearly at that coordinate - 0.5 (pixel-centre
    convention), then argmax. Returns (labels, inside mask of image pixels whose centre maps
    into the network input [0, size])."""
    s = scores[0].astype(np.float64)
    _, h, w = s.shape
    sx, sy = (float(np.float32(v)) for v in scale)
    ox, oy = (float(np.float32(v)) for v in offset)
    fx = (np.arange(image_w) + 0.5) * sx + ox
    fy = (np.arange(image_h) + 0.5) * sy + oy
    x0, x1, wx = _taps(fx - 0.5, w)
    y0, y1, wy = _taps(fy - 0.5, h)
    top = s[:, y0][:, :, x0] * (1 - wx) + s[:, y0][:, :, x1] * wx
    bottom = s[:, y1][:, :, x0] * (1 - wx) + s[:, y1][:, :, x1] * wx
    resized = top * (1 - wy[:, None]) + bottom * wy[:, None]
    inside = ((fy >= 0) & (fy <= h))[:, None] & ((fx >= 0) & (fx <= w))[None, :]
    return np.argmax(resized, axis=0).astype(np.int32), inside


def voc_palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map (as in the VOC development kit's bitget loop)."""
    cmap = np.zeros((n, 3), np.uint8)
    for j in range(n):
        lab, r, g, b = j, 0, 0, 0
        for i in range(8):
            r |= ((lab >> 0) & 1) << (7 - i)
            g |= ((lab >> 1) & 1) << (7 - i)
            b |= ((lab >> 2) & 1) << (7 - i)
            lab >>= 3
        cmap[j] = (r, g, b)
    return cmap


def reference_decode(heatmaps: np.ndarray, crop: tuple) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference of the heatmap decoding contract (SimpleBaseline/GluonCV rule)."""
    x0, y0, cw, ch = crop
    _, k, h, w = heatmaps.shape
    xy = np.zeros((k, 2), np.float64)
    scores = np.zeros(k, np.float64)
    for j in range(k):
        hm = heatmaps[0, j].astype(np.float64)
        idx = int(np.argmax(hm.reshape(-1)))  # first maximum
        px, py = idx % w, idx // w
        scores[j] = hm[py, px]
        x, y = float(px), float(py)
        if 1 < px < w - 1 and 1 < py < h - 1:
            x += 0.25 * np.sign(hm[py, px + 1] - hm[py, px - 1])
            y += 0.25 * np.sign(hm[py + 1, px] - hm[py - 1, px])
        xy[j] = (x0 + x * cw / w, y0 + y * ch / h)
    return xy, scores


# ------------------------------------------------------------------ argmax_labels


def test_argmax_labels_matches_numpy_random():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((1, 7, 19, 23)).astype(np.float32)
    out = _runtime.argmax_labels(scores)
    assert out.shape == (19, 23)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, np.argmax(scores[0], axis=0))


def test_argmax_labels_ties_go_to_first_max():
    rng = np.random.default_rng(1)
    # few distinct values: most pixels have ties between classes
    scores = rng.integers(0, 3, size=(1, 6, 17, 21)).astype(np.float32)
    ref = np.argmax(scores[0], axis=0)
    n_ties = int(((scores[0] == scores[0].max(axis=0)).sum(axis=0) > 1).sum())
    assert n_ties > 100  # the test really exercises ties
    np.testing.assert_array_equal(_runtime.argmax_labels(scores), ref)
    # all classes equal: every pixel is class 0
    flat = np.full((1, 4, 5, 6), 0.5, np.float32)
    np.testing.assert_array_equal(_runtime.argmax_labels(flat), np.zeros((5, 6), np.int32))


@pytest.mark.parametrize("channel", [0, 3])
def test_argmax_labels_nan_rejected(channel):
    scores = np.zeros((1, 5, 8, 8), np.float32)
    scores[0, channel, 4, 2] = np.nan
    with pytest.raises(InvalidInputError):
        _runtime.argmax_labels(scores)


@pytest.mark.parametrize("shape", [(5, 8, 8), (2, 5, 8, 8), (1, 0, 8, 8), (8, 8), (1, 1, 5, 8, 8)])
def test_argmax_labels_wrong_shape_rejected(shape):
    with pytest.raises(InvalidInputError):
        _runtime.argmax_labels(np.zeros(shape, np.float32))


# ------------------------------------------------------------------ segment_labels


@pytest.mark.parametrize(
    "net_wh, image_wh",
    [
        ((40, 30), (97, 61)),  # upscaling (both axes)
        ((64, 48), (37, 29)),  # downscaling (both axes)
        ((32, 48), (75, 20)),  # up in x, down in y
    ],
)
def test_segment_labels_stretch_matches_cv2_resize(net_wh, image_wh):
    rng = np.random.default_rng(2)
    nw, nh = net_wh
    iw, ih = image_wh
    scores = smooth_scores(rng, 5, nh, nw)
    out = _runtime.segment_labels(scores, iw, ih, scale=(nw / iw, nh / ih), offset=(0.0, 0.0))
    assert out.shape == (ih, iw)
    assert out.dtype == np.int32
    resized = np.stack([cv2.resize(p, (iw, ih), interpolation=cv2.INTER_LINEAR) for p in scores[0]])
    ref = np.argmax(resized, axis=0)
    agree = float((out == ref).mean())
    assert agree >= 0.999, f"only {agree:.4%} of pixels agree with cv2.resize + argmax"
    # the result is not trivially constant (the test can fail)
    assert len(np.unique(ref)) >= 3


def test_segment_labels_letterbox_matches_numpy_sampler():
    rng = np.random.default_rng(3)
    scores = smooth_scores(rng, 4, 64, 64, sigma=2.5)
    # image 100x50 letterboxed into 64x64: scale 0.64, content 64x32 at y offset 16
    scale, offset = (0.64, 0.64), (0.0, 16.0)
    out = _runtime.segment_labels(scores, 100, 50, scale=scale, offset=offset)
    assert out.shape == (50, 100)
    ref, inside = reference_segment(scores, 100, 50, scale, offset)
    assert inside.all()
    agree = float((out == ref).mean())
    assert agree >= 0.999, f"only {agree:.4%} of pixels agree with the NumPy sampler"
    # ignoring the offset (sampling the padding band) would give a different map
    wrong, _ = reference_segment(scores, 100, 50, scale, (0.0, 0.0))
    assert float((wrong == ref).mean()) < 0.9


def test_segment_labels_centre_crop_marks_unseen_pixels():
    rng = np.random.default_rng(4)
    c = 6
    scores = smooth_scores(rng, c, 64, 64)
    # image 100x80: resize short side to 64 (scale 0.8 → 80x64), centre crop 64x64 → x offset -8
    scale, offset = (0.8, 0.8), (-8.0, 0.0)
    out = _runtime.segment_labels(scores, 100, 80, scale=scale, offset=offset)
    assert out.shape == (80, 100)
    # by hand: column x is covered when 0 <= (x + 0.5) * 0.8 - 8 <= 64, i.e. 10 <= x <= 89
    cols = np.arange(100)
    covered = (cols >= 10) & (cols <= 89)
    assert (out[:, ~covered] == 255).all()
    assert (out[:, covered] >= 0).all() and (out[:, covered] < c).all()
    ref, inside = reference_segment(scores, 100, 80, scale, offset)
    np.testing.assert_array_equal(inside, np.broadcast_to(covered, (80, 100)))
    agree = float((out[:, covered] == ref[:, covered]).mean())
    assert agree >= 0.999, f"only {agree:.4%} of covered pixels agree with the NumPy sampler"


def test_segment_labels_crop_in_both_axes():
    # a geometry cropping rows too (offset y negative): rows outside → 255
    rng = np.random.default_rng(5)
    scores = smooth_scores(rng, 3, 32, 32)
    out = _runtime.segment_labels(scores, 40, 40, scale=(1.0, 1.0), offset=(-4.0, -4.0))
    # covered when 0 <= x + 0.5 - 4 <= 32, i.e. 4 <= x <= 35 (same for y)
    idx = np.arange(40)
    cov = (idx >= 4) & (idx <= 35)
    mask = cov[:, None] & cov[None, :]
    assert (out[~mask] == 255).all()
    # scale 1, integer offset: the covered block is exactly the network's own argmax
    np.testing.assert_array_equal(out[4:36, 4:36], np.argmax(scores[0], axis=0))


def test_segment_labels_single_class_is_all_zero():
    rng = np.random.default_rng(6)
    scores = rng.standard_normal((1, 1, 16, 16)).astype(np.float32)
    out = _runtime.segment_labels(scores, 33, 21, scale=(16 / 33, 16 / 21))
    np.testing.assert_array_equal(out, np.zeros((21, 33), np.int32))


def test_segment_labels_bad_input_rejected():
    with pytest.raises(InvalidInputError):
        _runtime.segment_labels(np.zeros((3, 8, 8), np.float32), 10, 10, scale=(0.8, 0.8))
    bad = np.zeros((1, 3, 8, 8), np.float32)
    bad[0, 1, 2, 2] = np.nan
    with pytest.raises(InvalidInputError):
        _runtime.segment_labels(bad, 10, 10, scale=(0.8, 0.8))
    with pytest.raises(InvalidInputError):
        _runtime.segment_labels(np.zeros((1, 3, 8, 8), np.float32), 0, 10, scale=(0.8, 0.8))


# ------------------------------------------------------------------ colorize


def test_colorize_known_voc_colours():
    known = {
        0: (0, 0, 0),
        1: (128, 0, 0),
        2: (0, 128, 0),
        3: (128, 128, 0),
        4: (0, 0, 128),
        15: (192, 128, 128),
        20: (0, 64, 128),
        255: (224, 224, 192),
    }
    labels = np.array([list(known)], np.int32)
    out = _runtime.colorize(labels)
    assert out.shape == (1, len(known), 3)
    assert out.dtype == np.uint8
    for i, (label, rgb) in enumerate(known.items()):
        assert tuple(int(v) for v in out[0, i]) == rgb, f"label {label}"


def test_colorize_matches_voc_palette_all_labels():
    labels = np.arange(256, dtype=np.int32).reshape(16, 16)
    out = _runtime.colorize(labels)
    np.testing.assert_array_equal(out, voc_palette()[labels])


def test_colorize_negative_label_rejected():
    labels = np.zeros((4, 4), np.int32)
    labels[2, 3] = -1
    with pytest.raises(InvalidInputError):
        _runtime.colorize(labels)


# ------------------------------------------------------------------ person_crop


def test_person_crop_tall_box():
    # w = 40, h = 120; aspect 192/256 = 0.75; 40 < 0.75 * 120 = 90 → widened to 90,
    # then × 1.25 → 112.5 x 150 around the centre (120, 110)
    x0, y0, w, h = _runtime.person_crop([100, 50, 140, 170], 192, 256, 1.25, 640, 480)
    assert (x0, y0, w, h) == pytest.approx((63.75, 35.0, 112.5, 150.0), abs=1e-4)


def test_person_crop_wide_box():
    # w = 200, h = 60; 200 > 0.75 * 60 → heightened to 200 / 0.75 = 266.667,
    # then × 1.25 → 250 x 333.333 around the centre (110, 50)
    x0, y0, w, h = _runtime.person_crop([10, 20, 210, 80], 192, 256, 1.25, 640, 480)
    assert (x0, y0, w, h) == pytest.approx((-15.0, 50 - 1000 / 6, 250.0, 1000 / 3), abs=1e-3)
    assert w / h == pytest.approx(192 / 256, rel=1e-5)


@pytest.mark.parametrize(
    "box, needle",
    [
        ([10, 10, 10, 50], "no area"),
        ([10, 10, 50, 10], "no area"),
        ([50, 10, 10, 50], "no area"),
        ([10, 60, 50, 20], "no area"),
        ([float("nan"), 10, 50, 50], "non-finite"),
        ([10, 10, float("inf"), 50], "non-finite"),
        ([10, float("-inf"), 50, 50], "non-finite"),
        ([700, 10, 800, 50], "outside"),
        ([10, 500, 50, 600], "outside"),
        ([-100, -100, -10, -10], "outside"),
        ([-50, 10, 0, 50], "outside"),
    ],
)
def test_person_crop_bad_box_rejected(box, needle):
    with pytest.raises(InvalidInputError, match=needle):
        _runtime.person_crop(box, 192, 256, 1.25, 640, 480)


def test_person_crop_box_partly_outside_accepted():
    x0, y0, w, h = _runtime.person_crop([-20, -10, 20, 110], 192, 256, 1.0, 640, 480)
    # w = 40 < 0.75 * 120 → 90 x 120 around (0, 50)
    assert (x0, y0, w, h) == pytest.approx((-45.0, -10.0, 90.0, 120.0), abs=1e-4)


# ------------------------------------------------------------------ crop_resize


def _smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 3.0)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _numpy_crop_resize(image: np.ndarray, crop: tuple, width: int, height: int) -> np.ndarray:
    """Float bilinear reference: (u, v) samples (x0 + u*w/width, y0 + v*h/height), 0 outside."""
    x0, y0, cw, ch = (float(np.float32(v)) for v in crop)
    h, w = image.shape[:2]
    pad = np.zeros((h + 2, w + 2, 3), np.float64)
    pad[1:-1, 1:-1] = image
    fx = x0 + np.arange(width) * cw / width
    fy = y0 + np.arange(height) * ch / height
    ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    wx, wy = (fx - ix)[None, :, None], (fy - iy)[:, None, None]
    # indices into the padded image; anything beyond one pixel outside reads 0 too
    ix0 = np.clip(ix + 1, 0, w + 1)
    ix1 = np.clip(ix + 2, 0, w + 1)
    iy0 = np.clip(iy + 1, 0, h + 1)
    iy1 = np.clip(iy + 2, 0, h + 1)
    pad[0, :], pad[-1, :], pad[:, 0], pad[:, -1] = 0, 0, 0, 0
    a = pad[iy0][:, ix0]
    b = pad[iy0][:, ix1]
    c = pad[iy1][:, ix0]
    d = pad[iy1][:, ix1]
    top = a + wx * (b - a)
    bottom = c + wx * (d - c)
    return top + wy * (bottom - top)


@pytest.mark.parametrize(
    "crop, size",
    [
        ((-10.3, 5.7, 50.2, 90.4), (48, 64)),  # partly outside on the left and the bottom
        ((20.25, -15.5, 60.0, 40.0), (96, 64)),  # partly outside right and top, upsampled
        ((3.0, 4.0, 40.0, 60.0), (20, 30)),  # inside, downsampled
    ],
)
def test_crop_resize_matches_cv2_warp_affine(crop, size):
    rng = np.random.default_rng(7)
    image = _smooth_image(rng, 80, 60)
    width, height = size
    out = _runtime.crop_resize(image, list(crop), width, height)
    assert out.shape == (height, width, 3)
    assert out.dtype == np.uint8
    x0, y0, cw, ch = crop
    m = np.array([[cw / width, 0, x0], [0, ch / height, y0]], np.float64)
    ref = cv2.warpAffine(
        image,
        m,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    diff = np.abs(out.astype(np.int32) - ref.astype(np.int32))
    # OpenCV's 5-bit weights are off by up to 1/64 per axis. Where a sample mixes an image
    # pixel with the zero border, the taps differ by up to 255, so OpenCV itself is off by up
    # to ~4 levels there (the float reference below shows the C++ exact); elsewhere the image
    # is smooth and ±2 holds.
    fx = x0 + np.arange(width) * cw / width
    fy = y0 + np.arange(height) * ch / height
    h, w = image.shape[:2]
    band_x = ((fx > -1) & (fx < 0)) | ((fx > w - 1) & (fx < w))
    band_y = ((fy > -1) & (fy < 0)) | ((fy > h - 1) & (fy < h))
    band = band_y[:, None] | band_x[None, :]
    assert diff[~band].max() <= 2, f"max |diff| {diff[~band].max()} away from the border"
    assert diff.max() <= 4, f"max |diff| {diff.max()} at the border"
    assert diff.mean() < 0.5, f"mean |diff| {diff.mean():.3f}"
    # a float reference of the stated mapping (rounding only differs at exact halves)
    fref = _numpy_crop_resize(image, crop, width, height)
    assert np.abs(out - fref).max() <= 0.5 + 1e-3


def test_crop_resize_outside_reads_zero():
    rng = np.random.default_rng(8)
    image = _smooth_image(rng, 80, 60) // 2 + 100  # no zero pixels in the image
    # sample points x = -30 + u * 1.0 for u < 29 lie more than one pixel left of the image
    out = _runtime.crop_resize(image, [-30.0, 10.0, 64.0, 32.0], 64, 32)
    assert (out[:, :29] == 0).all()
    assert (out[:, 31:] > 0).all()  # x >= 1: inside the image
    # column u = 30 samples x = 0 exactly: the image's first column
    np.testing.assert_array_equal(out[:, 30], image[10:42, 0])


# ------------------------------------------------------------------ decode_heatmaps


H, W = 64, 48
CROP = (10.5, -4.0, 96.0, 128.0)  # 2 image pixels per heatmap pixel on both axes


def _gauss(cx: float, cy: float, sigma: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))


def _pose_heatmaps() -> tuple[np.ndarray, list]:
    """Heatmaps with peaks at chosen places; the second value lists, per joint, the
    hand-expected heatmap coordinate (x, y) after the quarter-pixel shift."""
    rng = np.random.default_rng(9)
    maps, expect = [], []

    def add(hm, hx, hy):
        maps.append(hm + rng.uniform(0, 0.02, (H, W)))
        expect.append((hx, hy))

    add(_gauss(20.3, 29.7), 20.25, 29.75)  # interior: right higher, up higher
    add(_gauss(9.7, 40.4), 9.75, 40.25)  # interior: left higher, down higher
    add(_gauss(2.3, 2.3), 2.25, 2.25)  # smallest interior index on both axes
    add(_gauss(W - 2 - 0.3, H - 2 - 0.3), W - 2 - 0.25, H - 2 - 0.25)  # largest interior
    add(_gauss(1.3, 30.3), 1.0, 30.0)  # px = 1: no shift on either axis
    add(_gauss(25.3, 1.3), 25.0, 1.0)  # py = 1: no shift on either axis
    add(_gauss(W - 1 + 0.4, 20.3), W - 1, 20.0)  # right border
    add(_gauss(-0.4, -0.4), 0.0, 0.0)  # top-left corner
    add(_gauss(30.3, H - 1 + 0.2), 30.0, H - 1)  # bottom border
    # equal neighbours along x: no x shift, y still shifted
    hm = _gauss(24.0, 24.3) + rng.uniform(0, 0.02, (H, W))
    hm[24, 23] = hm[24, 25] = 0.5
    maps.append(hm)
    expect.append((24.0, 24.25))
    # equal neighbours along y: no y shift, x still shifted
    hm = _gauss(15.7, 33.0) + rng.uniform(0, 0.02, (H, W))
    hm[32, 16] = hm[34, 16] = 0.6
    maps.append(hm)
    expect.append((15.75, 33.0))
    # tie between two maxima in different rows: the first (row-major) wins
    hm = rng.uniform(0, 0.5, (H, W))
    hm[10, 30] = hm[35, 5] = 2.0
    hm[10, 31], hm[10, 29], hm[11, 30], hm[9, 30] = 1.0, 0.9, 0.8, 0.95
    maps.append(hm)
    expect.append((30.25, 9.75))
    # tie in the same row: the lower column wins
    hm = rng.uniform(0, 0.5, (H, W))
    hm[20, 40] = hm[20, 8] = 3.0
    hm[20, 7], hm[20, 9], hm[19, 8], hm[21, 8] = 1.0, 0.9, 0.7, 0.8
    maps.append(hm)
    expect.append((7.75, 20.25))
    return np.stack(maps)[None].astype(np.float32), expect


def test_decode_heatmaps_matches_numpy_reference():
    heatmaps, _ = _pose_heatmaps()
    xy, scores = _runtime.decode_heatmaps(heatmaps, list(CROP))
    k = heatmaps.shape[1]
    assert xy.shape == (k, 2)
    assert scores.shape == (k,)
    ref_xy, ref_scores = reference_decode(heatmaps, CROP)
    np.testing.assert_allclose(xy, ref_xy, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6, rtol=0)


def test_decode_heatmaps_hand_expected_positions():
    heatmaps, expect = _pose_heatmaps()
    xy, scores = _runtime.decode_heatmaps(heatmaps, list(CROP))
    x0, y0, cw, ch = CROP
    for j, (hx, hy) in enumerate(expect):
        want = (x0 + hx * cw / W, y0 + hy * ch / H)
        assert tuple(xy[j]) == pytest.approx(want, abs=1e-4), f"joint {j}"
        assert scores[j] == pytest.approx(float(heatmaps[0, j].max()), abs=1e-6)


def test_decode_heatmaps_random_maps():
    rng = np.random.default_rng(10)
    heatmaps = rng.uniform(0, 1, (1, 17, 16, 12)).astype(np.float32)
    crop = (-7.25, 33.5, 57.0, 81.0)
    xy, scores = _runtime.decode_heatmaps(heatmaps, list(crop))
    ref_xy, ref_scores = reference_decode(heatmaps, crop)
    np.testing.assert_allclose(xy, ref_xy, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6, rtol=0)


def test_decode_heatmaps_nan_rejected():
    heatmaps, _ = _pose_heatmaps()
    heatmaps[0, 3, 5, 5] = np.nan
    with pytest.raises(InvalidInputError):
        _runtime.decode_heatmaps(heatmaps, list(CROP))


@pytest.mark.parametrize("shape", [(17, 16, 12), (2, 17, 16, 12), (1, 0, 16, 12), (16, 12)])
def test_decode_heatmaps_wrong_shape_rejected(shape):
    with pytest.raises(InvalidInputError):
        _runtime.decode_heatmaps(np.zeros(shape, np.float32), list(CROP))


def test_decode_heatmaps_bad_crop_rejected():
    with pytest.raises(InvalidInputError):
        _runtime.decode_heatmaps(np.zeros((1, 2, 8, 8), np.float32), [0.0, 0.0, 8.0])
