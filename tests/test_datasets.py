"""Dataset loaders (class folders, RecordIO, VOC, COCO) and the digits generator."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecv.datasets import (
    COCODetection,
    ImageFolder,
    RecordIO,
    VOCDetection,
    open_dataset,
    write_recordio,
)
from edgecv.datasets.digits import generate, load_scans, split_scans
from edgecv.errors import InvalidInputError

pytestmark = pytest.mark.unit


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_digits_split_holds_out_scans():
    scans = load_scans()
    train, val = split_scans(scans, seed=0)
    assert len(train.labels) + len(val.labels) == 1797
    assert len(val.labels) == round(1797 * 0.2)
    train_set = {s.tobytes() for s in train.images}
    # scans that appear twice in the UCI set aside, no held-out scan is a training scan
    assert sum(s.tobytes() in train_set for s in val.images) <= 2
    assert set(np.unique(val.labels)) == set(range(10))


def test_digits_generator_is_reproducible(tmp_path, digits_root):
    again = generate(tmp_path / "again", seed=3, train_per_scan=1, scenes=(48, 16))
    assert _tree_digest(again) == _tree_digest(digits_root)
    other = generate(tmp_path / "other", seed=4, train_per_scan=1, scenes=(48, 16))
    assert _tree_digest(other) != _tree_digest(digits_root)
    with pytest.raises(InvalidInputError, match="not empty"):
        generate(again, seed=3)
    assert not (tmp_path / "again.partial").exists()


def test_image_folder(digits_root):
    train = ImageFolder(digits_root / "classification" / "train")
    assert train.classes == tuple(str(d) for d in range(10))
    assert len(train) == 1797 - 359
    image, label = train[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == 0
    assert sorted(set(train.labels())) == list(range(10))
    assert isinstance(open_dataset(digits_root / "classification", "val"), ImageFolder)


def test_image_folder_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="no class folders"):
        ImageFolder(tmp_path)
    (tmp_path / "cat").mkdir()
    with pytest.raises(InvalidInputError, match="has no images"):
        ImageFolder(tmp_path)
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    ds = ImageFolder(tmp_path)
    with pytest.raises(InvalidInputError, match="cannot decode"):
        ds[0]


@pytest.mark.integration
def test_recordio_round_trip(tmp_path, digits_root):
    folder = ImageFolder(digits_root / "classification" / "val")
    rec = write_recordio(folder, tmp_path / "val.rec")
    ds = RecordIO(rec)
    assert len(ds) == len(folder) and ds.labels() == folder.labels()
    image, label = ds[5]
    ref, ref_label = folder[5]
    assert label == ref_label
    np.testing.assert_array_equal(image, ref)  # PNG records: lossless
    assert isinstance(open_dataset(rec), RecordIO)
    with pytest.raises(InvalidInputError, match="RecordIO file not found"):
        RecordIO(tmp_path / "nothing.rec")


def test_voc_and_coco_agree(digits_root):
    voc = VOCDetection(digits_root / "voc", "val")
    coco = COCODetection(digits_root / "coco", "val")
    assert voc.classes == coco.classes == tuple(str(d) for d in range(10))
    assert len(voc) == len(coco) == 16
    for i in range(len(voc)):
        v, c = voc.labels()[i], coco.labels()[i]
        assert len(v) >= 1 and v.shape == c.shape
        # VOC stores 1-based inclusive pixels, COCO x, y, w, h: the max corner differs by one
        np.testing.assert_array_equal(v[:, :2], c[:, :2])
        np.testing.assert_array_equal(v[:, 2:4] + 1, c[:, 2:4])
        np.testing.assert_array_equal(v[:, 4:], c[:, 4:])
    image, label = voc[0]
    assert image.shape == (128, 128, 3)
    assert (label[:, 2] <= 128).all() and (label[:, :2] >= 0).all()
    assert isinstance(open_dataset(digits_root / "voc", "train", "detection"), VOCDetection)
    assert isinstance(open_dataset(digits_root / "coco", "train", "detection"), COCODetection)


def test_voc_errors(tmp_path, digits_root):
    root = tmp_path / "voc"
    shutil.copytree(digits_root / "voc", root)
    with pytest.raises(InvalidInputError, match="split file not found"):
        VOCDetection(root, "test")
    first = (root / "ImageSets" / "Main" / "val.txt").read_text().split()[0]
    xml = root / "Annotations" / f"{first}.xml"
    xml.write_text(xml.read_text().replace("<name>", "<name>x", 1))
    with pytest.raises(InvalidInputError, match="is not one of"):
        VOCDetection(root, "val")
    xml.write_text("<annotation><object>")
    with pytest.raises(InvalidInputError, match="cannot parse"):
        VOCDetection(root, "val")
    shutil.rmtree(root / "JPEGImages")
    with pytest.raises(InvalidInputError, match="JPEGImages"):
        VOCDetection(root, "val")
    with pytest.raises(InvalidInputError, match="neither a VOC root"):
        open_dataset(digits_root / "classification", "val", "detection")


def test_coco_errors(tmp_path, digits_root):
    root = tmp_path / "coco"
    shutil.copytree(digits_root / "coco", root)
    with pytest.raises(InvalidInputError, match="annotation file not found"):
        COCODetection(root, "test")
    ann = root / "annotations" / "instances_val.json"
    doc = json.loads(ann.read_text())
    doc["annotations"][0]["category_id"] = 99
    ann.write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError, match="unknown image or category"):
        COCODetection(root, "val")
    ann.write_text("{")
    with pytest.raises(InvalidInputError, match="not a COCO instances file"):
        COCODetection(root, "val")
