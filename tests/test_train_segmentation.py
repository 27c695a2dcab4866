"""Segmentation data and training: VOC masks (palette and indexed), COCO instance masks
(polygon, RLE, crowd), the crop augmentation keeps image and labels aligned, a short FCN
run lowers the loss, and evaluation scores the float model with the artifact's code."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgecv.compile import CompileOptions, compile_model
from edgecv.datasets import open_dataset
from edgecv.datasets.segmentation import (
    COCOSegmentation,
    VOCSegmentation,
    read_voc_mask,
    voc_palette,
)
from edgecv.errors import InvalidInputError
from edgecv.evaluate import ArtifactModel, evaluate, load_model
from edgecv.train import TrainConfig, train
from edgecv.train.segmentation import IGNORE, SegmentationTask, augment

pytestmark = pytest.mark.integration


@pytest.mark.unit
def test_voc_digits_masks_match_the_boxes(digits_root):
    seg = open_dataset(digits_root / "voc", "train", task="segmentation")
    det = open_dataset(digits_root / "voc", "train", task="detection")
    assert isinstance(seg, VOCSegmentation) and len(seg) == len(det) == 48
    assert seg.classes == ("background", *det.classes)
    for i in range(5):
        image, mask = seg[i]
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        _, boxes = det[i]
        # every digit's ink (class + 1) lies inside its tight box, and fills it to its edges
        for x0, y0, x1, y1, k, _ in boxes:
            inside = mask[int(y0) : int(y1), int(x0) : int(x1)]
            assert (inside == k + 1).any()
            ys, xs = np.nonzero(inside == k + 1)
            assert xs.min() == 0 and ys.min() == 0
        assert set(np.unique(mask)) <= {0, *(int(k) + 1 for k in boxes[:, 4])}


@pytest.mark.unit
def test_voc_mask_reads_indexed_color_and_border(tmp_path):
    ids = np.array([[0, 1, 2], [255, 20, 0]], np.uint8)
    color = tmp_path / "color.png"
    cv2.imwrite(str(color), voc_palette()[ids][..., ::-1])
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), ids)
    np.testing.assert_array_equal(read_voc_mask(color, 21), ids)
    np.testing.assert_array_equal(read_voc_mask(gray, 21), ids)
    with pytest.raises(InvalidInputError, match="outside the 11 classes"):
        read_voc_mask(color, 11)
    odd = tmp_path / "odd.png"
    cv2.imwrite(str(odd), np.full((2, 2, 3), 7, np.uint8))
    with pytest.raises(InvalidInputError, match="outside the VOC palette"):
        read_voc_mask(odd, 21)


@pytest.mark.unit
def test_voc_segmentation_rejects_broken_layouts(digits_root, tmp_path):
    with pytest.raises(InvalidInputError, match="JPEGImages not found"):
        VOCSegmentation(tmp_path)
    with pytest.raises(InvalidInputError, match="neither a VOC root"):
        open_dataset(tmp_path, task="segmentation")
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="split file not found"):
        VOCSegmentation(root, "train")
    (root / "ImageSets/Segmentation/train.txt").write_text("a\n")
    with pytest.raises(InvalidInputError, match="lists a, but .*missing"):
        VOCSegmentation(root, "train")


def _coco(tmp_path, annotations) -> COCOSegmentation:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    cv2.imwrite(str(root / "train" / "a.jpg"), np.zeros((10, 12, 3), np.uint8))
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 12}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}],
        "annotations": annotations,
    }
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return COCOSegmentation(root, "train")


@pytest.mark.unit
def test_coco_instance_masks_painted_by_hand(tmp_path):
    from pycocotools import mask as mask_utils

    rle = np.zeros((10, 12), np.uint8, order="F")
    rle[6:9, 8:11] = 1
    encoded = mask_utils.encode(rle)
    encoded["counts"] = encoded["counts"].decode()
    ds = _coco(
        tmp_path,
        [
            # a dog polygon: the rectangle x 1..5, y 1..4 (pycocotools fills pixel centres)
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [1, 1, 4, 3],
                "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "bbox": [8, 6, 3, 3],
                "segmentation": encoded,
                "iscrowd": 0,
            },
            {
                "id": 3,
                "image_id": 1,
                "category_id": 3,
                "bbox": [0, 8, 2, 2],
                "segmentation": [[0, 8, 2, 8, 2, 10, 0, 10]],
                "iscrowd": 1,
            },
        ],
    )
    assert ds.classes == ("background", "dog", "cat")  # categories in id order
    image, label = ds[0]
    assert image.shape[:2] == label.shape == (10, 12)
    assert (label[6:9, 8:11] == 2).all()  # cat (id 3 → index 2) from the RLE
    assert (label[1:4, 1:5] == 1).all() and label[0, 0] == 0  # dog polygon
    assert (label[8:10, 0:2] == IGNORE).all()  # crowd
    assert np.isin(label, [0, 1, 2, IGNORE]).all()


@pytest.mark.unit
def test_coco_segmentation_rejects_detection_only_files(tmp_path):
    with pytest.raises(InvalidInputError, match="no segmentation"):
        _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}])


@pytest.mark.unit
def test_augment_keeps_image_and_labels_aligned():
    """A label map that is a function of the image colors must stay that function."""
    rng = np.random.RandomState(0)
    image = np.zeros((40, 60, 3), np.uint8)
    label = np.zeros((40, 60), np.uint8)
    image[10:30, 20:50] = 255
    label[10:30, 20:50] = 1
    cfg = TrainConfig(hflip=True, extra={"color": 0.0, "min_scale": 0.5, "max_scale": 1.5})
    for _ in range(10):
        out, lab = augment(image, label, (48, 48), (0.0, 0.0, 0.0), rng, cfg)
        assert out.shape == (48, 48, 3) and lab.shape == (48, 48)
        covered = lab != IGNORE
        bright = out[..., 0] > 200
        dark = out[..., 0] < 50
        assert (lab[covered & bright] == 1).mean() > 0.97
        assert (lab[covered & dark] == 0).mean() > 0.97
        assert (out[~covered] == 0).all()  # padding is the mean color


def test_segmentation_loss_ignores_pixels_by_hand():
    from mxnet import nd

    task = SegmentationTask.__new__(SegmentationTask)
    scores = nd.array(np.log(np.array([[[[0.5, 0.2]], [[0.5, 0.8]]]], np.float32)))  # (1,2,1,2)
    labels = nd.array(np.array([[[1, IGNORE]]], np.float32))
    np.testing.assert_allclose(task.losses(scores, labels).asnumpy(), [-np.log(0.5)], rtol=1e-5)
    labels = nd.array(np.array([[[0, 1]]], np.float32))
    expect = -(np.log(0.5) + np.log(0.8)) / 2
    np.testing.assert_allclose(task.losses(scores, labels).asnumpy(), [expect], rtol=1e-5)
    aux = nd.array(np.zeros((1, 2, 1, 2), np.float32))  # log(1/2) everywhere after softmax
    got = task.losses((scores, aux), labels).asnumpy()
    np.testing.assert_allclose(got, [expect + 0.2 * np.log(2)], rtol=1e-5)


def test_fcn_training_lowers_the_loss(tmp_path, digits_root):
    cfg = TrainConfig(
        epochs=3,
        batch_size=4,
        lr=1e-3,
        optimizer="adam",
        hflip=False,
        label_smoothing=0,
        input_size=64,
        max_iters_per_epoch=4,
        warmup_epochs=0.25,
    )
    report = train("fcn_resnet50_voc", digits_root / "voc", tmp_path / "seg", cfg, progress=False)
    losses = [h["loss"] for h in report["history"]]
    assert losses[-1] < 0.8 * losses[0], losses
    val = report["val"]
    assert val["images"] == 16 and 0 <= val["mean_iou"] <= 1
    # the network learnt at least the background: most pixels right
    assert val["pixel_accuracy"] > 0.5, val

    # the trained weights compile with their own 11 classes (saved beside them), and the
    # artifact scores what the float model scores through the same evaluation code
    weights = tmp_path / "seg" / "fcn_resnet50_voc.params"
    assert (tmp_path / "seg" / "fcn_resnet50_voc.classes.txt").read_text().split() == [
        "background",
        *(str(d) for d in range(10)),
    ]
    art = compile_model(
        CompileOptions("fcn_resnet50_voc", input_size=64, pretrained=str(weights),
                       out_dir=str(tmp_path / "art"))
    )  # fmt: skip
    data = open_dataset(digits_root / "voc", "val", task="segmentation")
    float_report = evaluate(load_model("fcn_resnet50_voc", str(weights), input_size=64), data)
    art_report = evaluate(ArtifactModel(art), data)
    assert len(ArtifactModel(art).classes) == 11
    assert abs(float_report["pixel_accuracy"] - art_report["pixel_accuracy"]) < 0.005
    assert abs(float_report["mean_iou"] - art_report["mean_iou"]) < 0.005
