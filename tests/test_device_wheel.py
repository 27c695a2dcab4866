"""The runtime-only wheels on a device, played here: the aarch64 wheel installed beside NumPy's
aarch64 wheel into a folder that an arm64 CPython 3.11 (Debian's, unpacked) runs under
qemu-aarch64; the x86_64 wheel in a clean venv holding only NumPy, with MXNet and TVM
unimportable. Both run the shipped digits classifier and detector and must agree.

Set up by `make test` (`make wheel-deps`): the cross toolchain and qemu-user, TVM's aarch64
runtime, Debian's arm64 XNNPACK and CPython (build/python/aarch64), NumPy's wheels for both
machines (build/python/numpy-wheels) and patchelf (build/wheel-tools). The wheels are built
by packaging/runtime/build_wheel.py (incrementally, in build/runtime-wheel), or taken from
$EDGECV_RUNTIME_WHEELS (a folder holding both, e.g. `make wheels`' dist/).
"""

from __future__ import annotations

import json
import os
import sys
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from device_wheels import arm_python, arm_site, device_env, numpy_wheel, runtime_wheels
from device_wheels import run_checked as _run

from conftest import REPO

pytestmark = pytest.mark.targets

IMAGES = [REPO / "edgecv" / "data" / n for n in ("digit_7.png", "digits_scene.jpg")]
# what a device must not need: the compile stack
BLOCKED = ("mxnet", "tvm", "tvm_ffi", "onnx", "onnxruntime", "sklearn", "cv2")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    return runtime_wheels(tmp_path_factory.mktemp("wheels"))


def test_wheels_hold_the_runtime_alone(wheels):
    """Each wheel: the runtime's modules, its C++ module and the libraries it needs, run paths
    inside the wheel; nothing of the compiler; NumPy its only requirement."""
    for arch, wheel in wheels.items():
        names = zipfile.ZipFile(wheel).namelist()
        libs = {Path(n).name for n in names if "/_libs/" in n}
        assert {"libtvm_runtime.so", "libtvm_ffi.so"} <= libs, libs
        kernels = (
            {"libdnnl.so.2"}
            if arch == "x86_64"
            else {"libXNNPACK.so.0", "libpthreadpool.so.0", "libcpuinfo.so.0"}
        )
        assert kernels <= libs, (arch, libs)
        assert f"edgecv/_runtime.cpython-311-{arch}-linux-gnu.so" in names
        assert not any(
            n.startswith(("edgecv/compile/", "edgecv/zoo/", "edgecv/train/")) for n in names
        )
        meta = (
            zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
        )
        assert [
            r for r in meta.splitlines() if r.startswith("Requires-Dist") and "extra ==" not in r
        ] == ["Requires-Dist: numpy>=1.23"]
        assert wheel.stat().st_size < 15 * 2**20 or arch == "x86_64", wheel  # the aim


# Run on the device (either machine): load artifacts, run images given as arrays, report as
# JSON; the compile stack is made unimportable first.
DEVICE_SCRIPT = """
import importlib.abc, json, platform, sys
job = json.load(open(sys.argv[1]))
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in job["blocked"]:
            raise ImportError("blocked on this device: " + name)
sys.meta_path.insert(0, Blocked())
sys.path[:0] = job["path"]
import numpy as np
import edgecv
from edgecv.runtime import Predictor
report = {"machine": platform.machine(), "edgecv": edgecv.__file__, "runs": {}, "errors": {}}
images = {k: np.load(v) for k, v in job["images"].items()}
for key, art in job["artifacts"].items():
    p = Predictor(art)
    for name, image in images.items():
        r = p.run(image)
        if p.task == "classification":
            out = {"top1": r.top[0].index, "score": float(r.top[0].score)}
        else:
            out = {"ids": r.ids.tolist(), "scores": r.scores.tolist(), "boxes": r.boxes.tolist()}
        report["runs"][key + "/" + name] = out
for key, art in job["refused"].items():
    try:
        Predictor(art)
        report["errors"][key] = "loaded"
    except Exception as err:  # the test says which type it must be
        report["errors"][key] = type(err).__name__ + ": " + str(err)
try:
    Predictor(job["file_run"][0]).run(job["file_run"][1])
    report["errors"]["file"] = "ran"
except Exception as err:  # the test says which type it must be
    report["errors"]["file"] = type(err).__name__ + ": " + str(err)
report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in job["blocked"])
print(json.dumps(report))
"""

CLS, DET = "mobilenet0.25_digits", "yolo3_mobilenet0.25_digits"
# (model, target, precision) compiled once for the module; int8 ones calibrate on the session's
# digits (one table per model, reused by every target) so that their detections mean something
ARM = [
    (m, t, p)
    for m in (CLS, DET)
    for t, p in (
        ("rpi4", "fp32"),
        ("rpi4", "int8"),
        ("rpi5", "fp32"),
        ("rpi5", "int8"),
        ("rpi5", "fp16"),
    )
]
X86 = [(m, "x86_64", p) for m in (CLS, DET) for p in ("fp32", "int8")]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, digits_root) -> dict[str, Path]:
    from edgecv.compile import CompileOptions, compile_model

    tmp = tmp_path_factory.mktemp("device-artifacts")
    calib = {CLS: digits_root / "classification" / "train", DET: digits_root / "voc"}
    tables: dict[str, Path] = {}
    arts = {}
    for model, target, precision in X86 + ARM:  # x86 int8 first: it writes the tables
        key = f"{model}-{target}-{precision}"
        extra = {}
        if precision == "int8":
            extra = (
                {"calibration_table": str(tables[model])}
                if model in tables
                else {"calib_data": str(calib[model])}
            )
        arts[key] = compile_model(
            CompileOptions(
                model, target=target, precision=precision, out_dir=str(tmp / key), **extra
            )
        )
        if precision == "int8" and model not in tables:
            tables[model] = arts[key] / "calibration.json"
    # an x86 artifact whose convolutions call XNNPACK, which the x86 wheel does not bundle
    arts["xnnpack-x86_64"] = compile_model(
        CompileOptions(CLS, target="x86_64", kernels="xnnpack", out_dir=str(tmp / "xnnpack"))
    )
    return arts


def _images(directory: Path) -> dict[str, str]:
    """The test images decoded here (the devices have no OpenCV), as .npy files."""
    from edgecv.images import read_image

    directory.mkdir(exist_ok=True)
    out = {}
    for path in IMAGES:
        np.save(directory / f"{path.stem}.npy", read_image(path))
        out[path.stem] = str(directory / f"{path.stem}.npy")
    return out


def _device(cmd: list[object], job: dict, tmp: Path, timeout: int) -> dict:
    (tmp / "job.json").write_text(json.dumps(job))
    (tmp / "device.py").write_text(DEVICE_SCRIPT)
    out = _run(
        [*cmd, tmp / "device.py", tmp / "job.json"], env=device_env(), cwd=tmp, timeout=timeout
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def x86_device(wheels, artifacts, tmp_path_factory) -> dict:
    """The x86_64 wheel in a clean venv (NumPy from its wheel, nothing else), offline."""
    tmp = tmp_path_factory.mktemp("x86-device")
    venv.create(tmp / "venv", with_pip=True)
    py = tmp / "venv" / "bin" / "python"
    numpy = numpy_wheel("x86_64")
    _run([py, "-m", "pip", "install", "-q", "--no-index", numpy, wheels["x86_64"]], timeout=600)
    listed = _run([py, "-m", "pip", "list", "--format=freeze"]).stdout.split()
    assert sorted(
        r.split("==")[0] for r in listed if not r.startswith(("pip==", "setuptools=="))
    ) == ["edgecv-runtime", "numpy"], listed
    job = {
        "blocked": BLOCKED, "path": [], "images": _images(tmp / "images"),
        "artifacts": {k: str(v) for k, v in artifacts.items() if "-x86_64-" in k},
        "refused": {"rpi5": str(artifacts[f"{CLS}-rpi5-fp32"]), "xnnpack": str(artifacts["xnnpack-x86_64"])},
        "file_run": [str(artifacts[f"{CLS}-x86_64-fp32"]), str(IMAGES[0])],
    }  # fmt: skip
    return _device([py], job, tmp, timeout=600)


@pytest.fixture(scope="module")
def arm_device(wheels, artifacts, tmp_path_factory) -> dict:
    """The aarch64 wheel and NumPy's aarch64 wheel unpacked into one folder, run by Debian's
    arm64 CPython 3.11 under qemu-aarch64."""
    python = arm_python()
    tmp = tmp_path_factory.mktemp("arm-device")
    site = arm_site(wheels["aarch64"], tmp / "site")
    job = {
        "blocked": BLOCKED, "path": [str(site)], "images": _images(tmp / "images"),
        "artifacts": {k: str(v) for k, v in artifacts.items() if "-rpi" in k},
        "refused": {"x86_64": str(artifacts[f"{CLS}-x86_64-fp32"])},
        "file_run": [str(artifacts[f"{CLS}-rpi4-fp32"]), str(IMAGES[0])],
    }  # fmt: skip
    return _device(python, job, tmp, timeout=1200)


def _iou(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(
        0.0, min(a[3], b[3]) - max(a[1], b[1])
    )
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _same_detections(
    got: dict, ref: dict, what: str, min_score: float = 0.2, score_tol: float = 1e-3
) -> None:
    """Every reference detection above min_score has one of the same class with IoU >= 0.99
    and |Δscore| <= score_tol, and the device found nothing else above it (+ score_tol)."""
    keep = [i for i, s in enumerate(ref["scores"]) if s > min_score]
    assert keep, f"{what}: no reference detection above {min_score}: nothing to compare"
    for i in keep:
        matches = [
            j for j, c in enumerate(got["ids"])
            if c == ref["ids"][i] and _iou(got["boxes"][j], ref["boxes"][i]) >= 0.99
            and abs(got["scores"][j] - ref["scores"][i]) <= score_tol
        ]  # fmt: skip
        assert matches, (
            f"{what}: class {ref['ids'][i]} score {ref['scores'][i]:.4f} box {ref['boxes'][i]} not found in {got}"
        )
    extra = sum(s > min_score + score_tol for s in got["scores"]) - len(keep)
    assert extra <= 0, f"{what}: {extra} detections more than the reference above {min_score}"


@pytest.mark.parametrize("target", ["rpi4", "rpi5"])
def test_arm_wheel_under_qemu_matches_x86_wheel(arm_device, x86_device, target):
    """The rpi4/rpi5 artifacts run by the aarch64 wheel under qemu against the x86 artifacts
    run by the x86 wheel: fp32 (and fp16 on rpi5) give the x86 fp32 top-1 and detections.
    int8 gives the x86 int8 top-1 and detection classes; its boxes and scores are held to
    the other board's int8 artifact (the same integer graph): x86 int8 runs oneDNN's
    kernels (7-bit weights on a CPU without VNNI), a different arithmetic by design. fp16
    scores may move by 2e-2 (half precision keeps ~3 decimal digits; seen: 8e-3)."""
    assert arm_device["machine"] == "aarch64" and x86_device["machine"] == "x86_64"
    for device in (arm_device, x86_device):
        assert device["modules"] == [], device["modules"]  # nothing of the compile stack loaded
    other = "rpi5" if target == "rpi4" else "rpi4"
    for precision in ["fp32"] + (["fp16"] if target == "rpi5" else []) + ["int8"]:
        ref_precision = "int8" if precision == "int8" else "fp32"
        for image in (p.stem for p in IMAGES):
            what = f"{target} {precision} {image}"
            got = arm_device["runs"][f"{CLS}-{target}-{precision}/{image}"]
            ref = x86_device["runs"][f"{CLS}-x86_64-{ref_precision}/{image}"]
            assert got["top1"] == ref["top1"], (what, got, ref)
            got = arm_device["runs"][f"{DET}-{target}-{precision}/{image}"]
            ref = x86_device["runs"][f"{DET}-x86_64-{ref_precision}/{image}"]
            if precision != "int8":
                _same_detections(got, ref, what, score_tol=2e-2 if precision == "fp16" else 1e-3)
                continue
            confident = {c for c, s in zip(ref["ids"], ref["scores"], strict=True) if s > 0.3}
            assert confident and confident <= set(got["ids"]), (what, got, ref)
            _same_detections(
                got, arm_device["runs"][f"{DET}-{other}-int8/{image}"], what + " vs " + other
            )


def test_device_errors_name_the_target_and_the_machine(arm_device, x86_device):
    """An artifact for the other machine, one calling a kernel library the wheel lacks, and a
    file path where OpenCV is missing: each refused with a message that says why."""
    arm, x86 = arm_device["errors"], x86_device["errors"]
    assert arm["x86_64"].startswith("ArtifactError: artifact is built for x86_64-linux-gnu"), arm
    assert "(target 'x86_64'); this runtime runs on aarch64" in arm["x86_64"], arm
    assert "built for aarch64-linux-gnu (target 'rpi5'); this runtime runs on x86_64" in x86["rpi5"]
    assert x86["xnnpack"].startswith("ArtifactError: artifact calls xnnpack kernels"), x86
    assert (
        "artifact target 'x86_64' (x86_64-linux-gnu); this runtime on x86_64 has kernels: dnnl"
        in x86["xnnpack"]
    )
    for device, machine in ((arm, "aarch64"), (x86, "x86_64")):
        assert device["file"].startswith("InvalidInputError: cannot decode"), device
        assert f"needs OpenCV, which this {machine} Python cannot import" in device["file"]
        assert "pass the image as a uint8 NumPy array" in device["file"]


@pytest.mark.integration
def test_checkout_python_runs_an_artifact(artifacts):
    """`python` started in the repository's root imports the source tree's edgecv/ (it comes
    first on sys.path): the link `make install` puts there lets it run an artifact."""
    script = (
        "import edgecv; from edgecv.runtime import Predictor; "
        f"r = Predictor({str(artifacts[f'{CLS}-x86_64-fp32'])!r}).run('edgecv/data/digit_7.png'); "
        "print(edgecv.__file__, r.top[0].index)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = _run([sys.executable, "-c", script], cwd=REPO, env=env).stdout.split()
    assert out == [str(REPO / "edgecv" / "__init__.py"), "7"], out
