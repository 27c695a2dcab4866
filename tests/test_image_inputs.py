"""Any image a user has: every kind of file and array gives the network input of its 3-channel
8-bit equivalent, through `Predictor.run` (file and array) and `edgecv run`; what cannot be an
image is a clear error (InvalidInputError; exit code 3 on the command line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv.errors import InvalidInputError
from edgecv.runtime import Predictor, read_image

from conftest import SAMPLE_IMAGE

pytestmark = pytest.mark.integration

Image = pytest.importorskip("PIL.Image")
ImageOps = pytest.importorskip("PIL.ImageOps")

# decoded by libjpeg in OpenCV and, for the expected image, in Pillow: a level or two apart
APPROXIMATE = {"cmyk.jpg", "exif_rotated.jpg"}


def edgecv(*args):
    exe = Path(sys.executable).parent / "edgecv"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """BGR, not square, so that an orientation mistake changes the shape."""
    return cv2.resize(read_image(SAMPLE_IMAGE), (120, 90), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def image_files(photo, tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    """Each kind of file, and the 3-channel 8-bit BGR image it must decode to."""
    d = tmp_path_factory.mktemp("kinds")
    rgb = np.ascontiguousarray(photo[..., ::-1])
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    gray3 = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    alpha = np.tile(np.linspace(0, 255, photo.shape[1]).astype(np.uint8), (photo.shape[0], 1))
    files: dict[str, tuple[Path, np.ndarray]] = {}

    def add(name: str, expected: np.ndarray) -> Path:
        files[name] = (d / name, expected)
        return d / name

    assert cv2.imwrite(str(add("color.png", photo)), photo)
    assert cv2.imwrite(str(add("gray.png", gray3)), gray)
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(add("gray_alpha.png", gray3))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(add("rgba.png", photo))
    # 16-bit samples whose low byte is noise: decoding keeps the high byte
    noise = np.random.default_rng(0).integers(0, 256, photo.shape, dtype=np.uint16)
    assert cv2.imwrite(str(add("color16.png", photo)), photo.astype(np.uint16) * 256 + noise)
    assert cv2.imwrite(str(add("gray16.png", gray3)), gray.astype(np.uint16) * 256 + noise[..., 0])
    cmyk = d / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk, quality=100)
    add("cmyk.jpg", np.asarray(Image.open(cmyk).convert("RGB"))[..., ::-1])
    # stored rotated 90 degrees counter-clockwise; EXIF orientation 6 says "turn it clockwise"
    rotated = d / "exif_rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb))).save(rotated, quality=100, exif=exif)
    upright = ImageOps.exif_transpose(Image.open(rotated)).convert("RGB")
    add("exif_rotated.jpg", np.asarray(upright)[..., ::-1])
    return files


KINDS = [
    "color.png",
    "gray.png",
    "gray_alpha.png",
    "rgba.png",
    "color16.png",
    "gray16.png",
    "cmyk.jpg",
    "exif_rotated.jpg",
]


@pytest.mark.parametrize("kind", KINDS)
def test_files_decode_to_8bit_color(image_files, photo, kind):
    path, expected = image_files[kind]
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == photo.shape  # upright, 3 channels
    diff = np.abs(image.astype(int) - expected.astype(int))
    if kind in APPROXIMATE:
        assert diff.mean() < 1.5 and np.abs(image.astype(int) - photo.astype(int)).mean() < 4
    else:
        assert diff.max() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_file_gives_the_top1_of_its_color_equivalent(small_artifact, image_files, kind):
    path, expected = image_files[kind]
    p = Predictor(small_artifact)
    from_file, from_equivalent = p.run(path), p.run(expected)
    assert from_file.top[0].index == from_equivalent.top[0].index
    if kind not in APPROXIMATE:
        np.testing.assert_array_equal(from_file.probabilities, from_equivalent.probabilities)


def _arrays(photo: np.ndarray) -> dict[str, tuple[np.ndarray, str, np.ndarray]]:
    """Array kinds: (array, order, 3-channel BGR equivalent)."""
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    gray3 = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    alpha = np.full(gray.shape, 7, np.uint8)
    return {
        "HxW": (gray, "bgr", gray3),
        "HxWx1": (gray[..., None], "bgr", gray3),
        "HxWx1 rgb": (gray[..., None], "rgb", gray3),
        "HxWx4 bgra": (np.dstack([photo, alpha]), "bgr", photo),
        "HxWx4 rgba": (np.dstack([photo[..., ::-1], alpha]), "rgb", photo),
        "HxWx4 strided": (np.dstack([photo, alpha, alpha])[:, :, :4], "bgr", photo),
    }


@pytest.mark.parametrize("kind", list(_arrays(np.zeros((8, 8, 3), np.uint8))))
def test_array_gives_the_input_of_its_color_equivalent(small_artifact, photo, kind):
    array, order, expected = _arrays(photo)[kind]
    p = Predictor(small_artifact)
    _, tensor, _ = p.preprocess(array, order=order)
    _, reference, _ = p.preprocess(expected, order="bgr")
    np.testing.assert_array_equal(tensor, reference)
    assert p.run(array, order=order).top[0].index == p.run(expected).top[0].index


def test_cli_runs_every_kind_of_file(small_artifact, image_files):
    out = edgecv("run", small_artifact, *(image_files[k][0] for k in KINDS), "--json")
    assert out.returncode == 0, out.stderr
    p = Predictor(small_artifact)
    for kind, entry in zip(KINDS, json.loads(out.stdout), strict=True):
        assert entry["top"][0]["index"] == p.run(image_files[kind][1]).top[0].index, kind


def test_huge_images(small_artifact, photo, tmp_path):
    """A 48-megapixel photo, gray file and color array: decoded and resampled without trouble."""
    big = cv2.resize(photo, (8000, 6000), interpolation=cv2.INTER_LINEAR)
    p = Predictor(small_artifact)
    expected = p.run(cv2.cvtColor(cv2.cvtColor(big, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
    path = tmp_path / "big_gray.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_BGR2GRAY))
    np.testing.assert_array_equal(p.run(path).probabilities, expected.probabilities)
    color = p.run(big)
    assert color.top and np.isfinite(color.probabilities).all()
    with_alpha = p.run(np.dstack([big, big[..., :1]]))
    np.testing.assert_array_equal(with_alpha.probabilities, color.probabilities)


@pytest.mark.parametrize(
    "array,message",
    [
        (np.zeros((64, 64, 3), np.float32), "uint8 array, got dtype float32"),
        (np.zeros((64, 64, 3), np.uint16), "uint8 array, got dtype uint16"),
        (np.zeros((64, 64), np.int8), "uint8 array"),
        (np.zeros((64, 64, 2), np.uint8), "2 channels; 1 .gray., 3 .color. or 4"),
        (np.zeros((64, 64, 5), np.uint8), "5 channels"),
        (np.zeros((1, 64, 64, 3), np.uint8), r"4 dimensions \(1, 64, 64, 3\)"),
        (np.zeros((64,), np.uint8), "1 dimensions"),
    ],
)
def test_other_arrays_are_a_clear_error(small_artifact, array, message):
    with pytest.raises(InvalidInputError, match=message):
        Predictor(small_artifact).run(array)


@pytest.fixture()
def damaged_files(image_files, tmp_path) -> dict[str, tuple[Path, str]]:
    """Files that are not (whole) images, and what the error says."""
    jpeg = image_files["exif_rotated.jpg"][0].read_bytes()
    png = image_files["color.png"][0].read_bytes()
    files = {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated or corrupt JPEG"),
        "no_end.jpg": (jpeg[:-2], "truncated or corrupt JPEG"),
        "truncated.png": (png[: len(png) // 2], "truncated or corrupt PNG"),
        "empty.png": (b"", "the file is empty"),
        "text.jpg": (b"this is not a JPEG", "not an image file"),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: (tmp_path / name, message) for name, (_, message) in files.items()}


def test_damaged_files_are_a_clear_error(small_artifact, damaged_files):
    p = Predictor(small_artifact)
    for path, message in damaged_files.values():
        with pytest.raises(InvalidInputError, match=message):
            p.run(path)
    for path, message in damaged_files.values():
        out = edgecv("run", small_artifact, path)
        assert out.returncode == 3 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
