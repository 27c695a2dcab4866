"""Bad input gives a clear error, never a crash of the Python process."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgecv.errors import ArtifactError, EdgecvError, InvalidInputError
from edgecv.runtime import Predictor

from conftest import SAMPLE_IMAGE

pytestmark = pytest.mark.integration


@pytest.fixture()
def artifact_copy(small_artifact, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(small_artifact, dst)
    return dst


def _flip_byte(path, offset_fraction=0.5):
    """Change one byte (or, in an empty file such as the weights of an artifact whose weights
    live in its library, add one)."""
    data = bytearray(path.read_bytes())
    if not data:
        path.write_bytes(b"\x01")
        return
    i = int(len(data) * offset_fraction)
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "image,message",
    [
        (np.zeros((64, 64, 2), np.uint8), "2 channels"),  # gray, color, color + alpha: 1, 3, 4
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((1, 1, 3), np.uint8), "1x1 pixels"),
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((2, 64, 64, 3), np.uint8), "dimensions"),
    ],
)
def test_wrong_kind_of_image(small_artifact, image, message):
    with pytest.raises(InvalidInputError, match=message):
        Predictor(small_artifact).run(image)


def test_not_an_image_file(small_artifact, tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is not a JPEG")
    with pytest.raises(InvalidInputError, match="cannot decode .*not an image file"):
        Predictor(small_artifact).run(fake)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(SAMPLE_IMAGE.read_bytes()[:-100])  # truncated: refused, not half gray
    with pytest.raises(InvalidInputError, match="truncated or corrupt JPEG"):
        Predictor(small_artifact).run(cut)
    with pytest.raises(InvalidInputError, match="not found"):
        Predictor(small_artifact).run(tmp_path / "missing.jpg")


def test_bad_order_and_topk(small_artifact):
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InvalidInputError, match="color order"):
        Predictor(small_artifact).run(image, order="hsv")
    with pytest.raises(InvalidInputError, match="top-k"):
        Predictor(small_artifact).run(image, top_k=-3)
    with pytest.raises(InvalidInputError, match="does not match the model"):
        Predictor(small_artifact).run_tensor(np.zeros((1, 3, 32, 32), np.float32))


def test_missing_artifact(tmp_path):
    with pytest.raises(ArtifactError, match="no manifest"):
        Predictor(tmp_path / "nothing-here")


@pytest.mark.parametrize("victim", ["model.so", "weights.bin"])
def test_corrupted_file_is_refused(artifact_copy, victim):
    _flip_byte(artifact_copy / victim)
    with pytest.raises(ArtifactError, match=f"{victim} is corrupted"):
        Predictor(artifact_copy)


def test_corrupted_manifest_is_refused(artifact_copy):
    manifest = artifact_copy / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text.replace('"tench"', '"tench!"', 1))  # still valid JSON
    with pytest.raises(ArtifactError, match="does not match manifest_sha256"):
        Predictor(artifact_copy)
    manifest.write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(ArtifactError):
        Predictor(artifact_copy)


def test_library_that_does_not_load(artifact_copy):
    """A library whose digest matches but which is not a loadable ELF (re-sealed manifest)."""
    import json

    from edgecv.artifact import read_manifest, seal_manifest, sha256_file

    (artifact_copy / "model.so").write_bytes(b"\x7fELF not really")
    doc = read_manifest(artifact_copy, verify_files=False)
    doc.pop("manifest_sha256")
    doc["sha256"]["model.so"] = sha256_file(artifact_copy / "model.so")
    (artifact_copy / "manifest.json").write_text(seal_manifest(doc))
    with pytest.raises(ArtifactError, match="cannot load"):
        Predictor(artifact_copy)
    assert json.loads((artifact_copy / "manifest.json").read_text())["schema"] == "edgecv.artifact"


def test_errors_share_one_base(small_artifact):
    with pytest.raises(EdgecvError):
        Predictor(small_artifact).run(np.zeros((3, 3), np.uint8))
    assert Predictor(small_artifact).run(SAMPLE_IMAGE).top  # still usable afterwards
