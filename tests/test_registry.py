"""Zoo registry, model metadata and target files (no TVM; MXNet only where a model is built)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import edgecv
from edgecv.errors import InvalidInputError, UnknownNameError
from edgecv.registry import DataConfig
from edgecv.targets import get_target, list_targets, parse_target
from edgecv.zoo import label_set
from edgecv.zoo.catalog import MODELS

pytestmark = pytest.mark.unit

EXPECTED_MODELS = (
    [f"resnet{d}_v{v}" for v in (1, 2) for d in (18, 34, 50, 101, 152)]
    + [f"resnet{d}_v1b" for d in (18, 34, 50, 101, 152)]
    + [f"resnet{d}_v1{x}" for x in "cds" for d in (50, 101, 152)]
    + [f"mobilenet{m}" for m in ("1.0", "0.75", "0.5", "0.25")]
    + [f"mobilenetv2_{m}" for m in ("1.0", "0.75", "0.5", "0.25")]
    + ["mobilenetv3_large", "mobilenetv3_small", "darknet53"]
    + [f"resnet{d}_v1e" for d in (50, 101, 152)]
    + ["alexnet", "squeezenet1.0", "squeezenet1.1", "googlenet", "inceptionv3"]
    + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
    + [f"densenet{d}" for d in (121, 161, 169, 201)]
    + [f"se_resnet{d}_v{v}" for v in (1, 2) for d in (18, 34, 50, 101, 152)]
    + [f"{se}resnext{n}" for se in ("", "se_") for n in ("50_32x4d", "101_32x4d", "101_64x4d")]
    + ["resnext101e_64x4d", "se_resnext101e_64x4d"]
    + ["resnet50_v1b_gn", "resnet101_v1b_gn", "senet_154", "senet_154e"]
    + [f"resnest{d}" for d in (14, 26, 50, 101, 200, 269)]
    + ["shufflenet_v1", "shufflenet_v2", "xception", "xception71"]
    + [f"cifar_resnet{d}_v{v}" for v in (1, 2) for d in (20, 56, 110)]
    + [f"cifar_wideresnet{w}" for w in ("16_10", "28_10", "40_8")]
    + ["cifar_resnext29_32x4d", "cifar_resnext29_16x64d"]
    + ["dla34"]
    + [f"residualattentionnet{d}" for d in (56, 92, 128, 164, 200, 236)]
    + [f"cifar_residualattentionnet{d}" for d in (56, 92)]
    + ["mobilenet0.25_digits"]  # trained by edgecv on the digits dataset
)
EXPECTED_DETECTORS = (
    [
        f"yolo3_{b}_{d}"
        for d in ("coco", "voc")
        for b in ("darknet53", "mobilenet1.0", "mobilenet0.25")
    ]
    + [
        f"ssd_{s}_{b}_{d}"
        for d in ("voc", "coco")
        for s, b in (
            ("300", "vgg16_atrous"),
            ("512", "vgg16_atrous"),
            ("512", "resnet50_v1"),
            ("512", "mobilenet1.0"),
        )
    ]
    + [f"ssd_300_{b}_{d}" for b in ("mobilenet0.25", "resnet34_v1b") for d in ("voc", "coco")]
    + ["ssd_300_mobilenet1.0_lite_coco", "ssd_512_resnet18_v1_voc", "ssd_512_resnet18_v1_coco"]
    + ["yolo3_mobilenet0.25_digits"]
    + [
        f"center_net_{b}_{d}"
        for d in ("voc", "coco")
        for b in ("resnet18_v1b", "resnet50_v1b", "resnet101_v1b")
        + ("mobilenetv3_large_duc", "mobilenetv3_small_duc", "dla34")
    ]
)


EXPECTED_SEGMENTERS = [
    "fcn_resnet50_voc",
    "fcn_resnet101_voc",
    "fcn_resnet101_coco",
    "fcn_resnet50_ade",
    "fcn_resnet101_ade",
    "psp_resnet50_ade",
    *(f"psp_resnet101_{d}" for d in ("voc", "ade", "coco", "citys")),
    "deeplab_resnet50_ade",
    *(f"deeplab_resnet101_{d}" for d in ("voc", "ade", "coco", "citys")),
    "deeplab_resnet152_voc",
    "deeplab_resnet152_coco",
    "deeplab_resnet50_citys",
    *(f"deeplab_resnest{d}_ade" for d in (50, 101, 200, 269)),
]
EXPECTED_POSE = [
    *(f"simple_pose_resnet{d}_v1b" for d in (18, 50, 101, 152)),
    *(f"simple_pose_resnet{d}_v1d" for d in (50, 101, 152)),
    *(
        f"mobile_pose_{b}"
        for b in (
            "resnet18_v1b",
            "resnet50_v1b",
            "mobilenet1.0",
            "mobilenetv2_1.0",
            "mobilenetv3_large",
            "mobilenetv3_small",
        )
    ),
]


def test_every_issue_model_is_registered():
    assert sorted(edgecv.list_models(task="classification")) == sorted(EXPECTED_MODELS)
    assert sorted(edgecv.list_models(task="detection")) == sorted(EXPECTED_DETECTORS)
    assert sorted(edgecv.list_models(task="segmentation")) == sorted(EXPECTED_SEGMENTERS)
    assert sorted(edgecv.list_models(task="pose")) == sorted(EXPECTED_POSE)
    assert len(edgecv.list_models()) == len(EXPECTED_MODELS) + len(EXPECTED_DETECTORS) + len(
        EXPECTED_SEGMENTERS
    ) + len(EXPECTED_POSE)


def test_metadata_follows_the_schema():
    sizes = {
        "imagenet1k": 1000,
        "coco": 80,
        "voc": 20,
        "digits": 10,
        "cifar10": 10,
        "voc_seg": 21,
        "ade20k": 150,
        "cityscapes": 19,
        "coco_keypoints": 17,
    }
    for spec in MODELS:
        assert spec.task in ("classification", "detection", "segmentation", "pose")
        assert spec.builder.startswith("edgecv.zoo.") and ":" in spec.builder
        d = spec.data
        if spec.classes == "digits":  # edgecv's own small-input models, with shipped weights
            assert spec.weights == f"{spec.name}.params" and d.input_size in ((64, 64), (128, 128))
        elif spec.classes == "cifar10":  # CIFAR-10's own 32x32 images, stretched
            assert d.resize == "stretch" and d.input_size == (32, 32)
        elif spec.task == "classification":  # 299: Inception v3 and Xception
            # 256, 320, 416: ResNeSt-101/200/269, evaluated at growing crops
            square = ((224, 224), (256, 256), (299, 299), (320, 320), (416, 416))
            assert d.resize == "short_crop" and d.input_size in square
            assert d.resize_short >= d.input_size[0]
        elif spec.task == "segmentation":
            assert d.resize == "letterbox" and d.input_size == (480, 480)
        elif spec.task == "pose":
            assert d.resize == "person_crop" and d.input_size == (256, 192)
        else:
            assert d.resize in ("letterbox", "stretch") and d.input_size[0] in (300, 416, 512)
        assert len(d.mean) == 3 and len(d.std) == 3 and all(s > 0 for s in d.std)
        assert d.color in ("RGB", "BGR") and d.interpolation == "linear"
        assert len(label_set(spec.classes)) == sizes[spec.classes]


def test_imagenet_labels():
    labels = label_set("imagenet1k")
    assert labels[0] == "tench" and labels[281] == "tabby" and len(set(labels)) >= 990


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownNameError) as info:
        edgecv.get_model("resnet50_v1x")
    message = str(info.value)
    assert "unknown model 'resnet50_v1x'" in message and "resnet50_v1" in message


def test_data_config_scaling_keeps_crop_ratio():
    d = DataConfig().scaled(112)
    assert d.input_size == (112, 112) and d.resize_short == 128


@pytest.mark.integration
def test_classes_argument(tmp_path):
    net = edgecv.get_model("mobilenet0.25", classes=["cat", "dog"])
    assert net.edgecv_meta.classes == ("cat", "dog")
    with pytest.raises(InvalidInputError, match="classes must be >= 1"):
        edgecv.get_model("mobilenet0.25", classes=0)
    with pytest.raises(InvalidInputError, match="not found"):
        edgecv.get_model("mobilenet0.25", pretrained=tmp_path / "missing.params")
    import mxnet as mx

    wrong = tmp_path / "wrong.params"
    other = edgecv.get_model("mobilenet0.25")
    other(mx.nd.zeros((1, 3, 32, 32)))
    other.save_parameters(str(wrong))
    with pytest.raises(InvalidInputError, match="cannot load"):
        edgecv.get_model("resnet18_v1", pretrained=wrong)


def test_import_edgecv_is_light():
    code = "import sys, edgecv; edgecv.list_models(); print(sorted(m for m in ('mxnet', 'tvm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_targets_load_and_validate(tmp_path):
    names = [t.name for t in list_targets()]
    assert {"x86_64", "x86_64-avx2", "x86_64-avx512"} <= set(names)
    assert get_target("x86_64").tvm["kind"] == "llvm"
    with pytest.raises(UnknownNameError, match="x86_64"):
        get_target("x86-64")
    get_target("x86_64").check_precision("int8")  # oneDNN's integer kernels
    get_target("rpi4").check_precision("int8")  # integer ops in TVM code
    with pytest.raises(InvalidInputError, match="does not support precision 'fp16'"):
        get_target("rpi4").check_precision("fp16")  # Cortex-A72: no fp16 arithmetic
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndescription = "d"\ndevice = "toaster"\n')
    with pytest.raises(InvalidInputError, match="device 'toaster'"):
        parse_target(bad)
    bad.write_text('name = "other"\n')
    with pytest.raises(InvalidInputError, match="must match the file name"):
        parse_target(bad)
    bad.write_text("name = [")
    with pytest.raises(InvalidInputError, match="bad.toml"):
        parse_target(bad)
