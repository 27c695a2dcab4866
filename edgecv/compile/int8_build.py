"""``edgecv compile --int8``: calibrate, build the integer artifact, and guard its accuracy.

1. the float artifact is compiled first (checked against ONNX Runtime like any other);
2. calibration runs it on the calibration images (``--calib-data``; without it, edgecv's
   built-in photos, with a warning) through the C++ runtime and records each layer's input
   range (edgecv/calibration.py), or a saved table is read;
3. the int8 library is built from the same ONNX graph, with the calibrated layers as
   int8 kernel calls (edgecv/compile/offload.py): oneDNN's on x86, XNNPACK's on ARM; or,
   on targets without an int8 kernel library (CUDA) and with ``--kernels tvm``, as integer
   Relax operators (edgecv/compile/int8_lowering.py);
4. with evaluation data, the task's headline metric (edgecv/tasks.py: top-1, VOC07 mAP,
   mIoU, keypoint AP with ground-truth boxes) of both artifacts is measured by the same
   evaluation code as ``edgecv eval``; if int8 loses more than ``max_drop`` points, the
   layers whose inputs quantise worst (lowest SQNR in the table) go back to float, 1, 2,
   4, ... of them, until the drop is within bounds, or the compile fails with the
   per-layer table.
   oneDNN computes with 8-bit weights on CPUs with VNNI and 7-bit ones elsewhere (the
   runtime's Int8WeightBits); the gate scores each that the target's CPUs may use
   (``int8_weight_bits`` in its TOML) and that this CPU can compute, and keeps the worst.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import LIBRARY, WEIGHTS, ArtifactWriter, read_manifest
from ..errors import EdgecvError, InvalidInputError

CALIBRATION_FILE = "calibration.json"
# the library whose float kernels record calibration statistics (dnnl_observer.cc): the
# float reference of an int8 build on another library is compiled for x86 with it
OBSERVING_LIBRARY = "dnnl"


def _weight_bits_to_judge(target_bits: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """The int8 weight widths of a oneDNN target that this machine can score (7 always: exact
    integer arithmetic anywhere; 8 only with VNNI), and those it cannot."""
    from .. import _runtime

    here = _runtime.int8_weight_bits()  # 8 with VNNI
    can = [b for b in target_bits if b <= here]
    return can, [b for b in target_bits if b not in can]


class _WeightBits:
    """Within the block, the oneDNN int8 kernels compute with ``bits``-bit weights (None: as
    the CPU chooses)."""

    def __init__(self, bits: int | None) -> None:
        self.bits = bits

    def __enter__(self) -> None:
        from .. import _runtime

        if self.bits is not None:
            _runtime.set_int8_weight_bits(self.bits)

    def __exit__(self, *exc: object) -> None:
        from .. import _runtime

        if self.bits is not None:
            _runtime.set_int8_weight_bits(0)


def compile_int8(bundle_path: Any, options: Any, step: Any) -> Path:
    """The int8 artifact of the bundle at ``bundle_path`` (steps in the module docstring)."""
    from .. import calibration
    from ..bundle import read_bundle
    from ..evaluate import ArtifactModel, evaluate
    from ..runtime import Predictor
    from ..targets import INT8_KERNEL_LIBRARIES, KERNEL_PACKAGES, resolve_target
    from ..tasks import TASKS
    from .build import _check_device_code, compile_float
    from .options import choose_kernels, default_out_dir, local_kernel_libraries
    from .tvm_process import build_into

    target = resolve_target(options.target, options.arch, "int8")
    kernels = choose_kernels(options.kernels, target)
    # targets without a kernel library that has int8 kernels (CUDA), and --kernels tvm, get
    # integer ops in TVM-generated code (int8_lowering.py); calibration and the accuracy gate
    # still run here, on x86 artifacts
    in_tvm = options.kernels == "tvm" or not any(
        k in INT8_KERNEL_LIBRARIES for k in target.target.kernels
    )
    here = resolve_target("x86_64", None, "int8")
    if in_tvm:
        kernels = []
    elif kernels and kernels[0] not in INT8_KERNEL_LIBRARIES:
        raise InvalidInputError(
            f"{kernels[0]} has no int8 kernels in edgecv: int8 on {target.label} runs on "
            f"{', '.join(INT8_KERNEL_LIBRARIES)} (--kernels auto)"
        )
    if not kernels and not in_tvm:
        library = target.target.kernels[0]
        raise InvalidInputError(
            f"int8 on {target.label} runs on {library}'s integer kernels, which this edgecv "
            f"runtime lacks (install {KERNEL_PACKAGES[library]} and reinstall edgecv, or "
            "--kernels tvm)"
        )
    # calibration runs a float artifact of this machine with oneDNN's kernels, unless the
    # int8 layers are oneDNN's own (then the target's float artifact, as the int8 one)
    reference_here = in_tvm or (bool(kernels) and kernels[0] != OBSERVING_LIBRARY)
    if reference_here and OBSERVING_LIBRARY not in local_kernel_libraries():
        raise InvalidInputError(
            f"int8 for {target.label} is calibrated on this machine with oneDNN's float kernels, "
            "which this edgecv runtime lacks (install libdnnl-dev and reinstall edgecv)"
        )
    if options.eval_data and kernels and kernels[0] not in local_kernel_libraries():
        raise InvalidInputError(  # the gate runs the int8 graph here (an x86 twin)
            f"the accuracy gate runs {kernels[0]}'s int8 kernels here, which this edgecv "
            f"runtime lacks (install {KERNEL_PACKAGES[kernels[0]]} and reinstall edgecv)"
        )
    builtin = not (options.calib_data or options.calibration_table)
    calib_source = str(options.calib_data) if options.calib_data else None
    _, bundle = read_bundle(bundle_path)
    task = TASKS.get(bundle.task)  # its headline metric is what the gate holds
    options = replace(options, model=options.model or bundle.name)
    recipe = calibration.load_recipe(options.model, bundle.model.get("family"))
    if options.calibrator:
        recipe.calibrator = options.calibrator
    if options.calib_images:
        recipe.images = options.calib_images
    if options.keep_float is not None:
        recipe.keep_float = list(options.keep_float)
    recipe.check()
    out_dir = Path(options.out_dir or default_out_dir(options.model, target.label, "int8"))
    eval_set = None
    if options.eval_data:
        from ..datasets import open_dataset

        eval_set = open_dataset(options.eval_data, "val", bundle.task)
        if len(eval_set) == 0:
            raise InvalidInputError(f"evaluation data {options.eval_data} has no images")
    calib_images: list[Path] = []
    if options.calibration_table is None:  # find the images before the long float compile
        found = (
            calibration.builtin_images() if builtin else calibration.find_images(options.calib_data)
        )
        calib_images = calibration.pick(found, recipe.images, options.seed)
        if builtin:
            print(calibration.builtin_warning(len(calib_images)), file=sys.stderr, flush=True)
            calib_source = f"{calibration.BUILTIN_SET}: edgecv/data/calibration"

    with tempfile.TemporaryDirectory(prefix="edgecv-int8-") as tmp:
        step("compiling the float artifact (the reference, and what calibration runs)")
        reference = {"target": "x86_64", "arch": None} if reference_here else {}
        float_dir = compile_float(
            bundle_path,
            replace(
                options,
                precision="fp32",
                out_dir=str(Path(tmp) / "float"),
                kernels=OBSERVING_LIBRARY if reference_here else kernels[0],
                **reference,
            ),
            step,
        )
        float_doc = read_manifest(float_dir)
        input_shape = float_doc["inputs"][0]["shape"]
        if options.calibration_table:
            table = calibration.load_table(options.calibration_table, options.model, input_shape)
            step(f"calibration table {options.calibration_table}: {len(table['layers'])} layers")
        else:
            step(
                f"calibrating ({recipe.calibrator}, recipe {recipe.source}) on "
                f"{len(calib_images)} images from {calib_source}"
            )
            predictor = Predictor(float_dir)
            stats = calibration.observe(lambda im: predictor.run(im), calib_images, recipe)
            del predictor
            table = calibration.make_table(
                options.model, input_shape, stats, recipe, calib_images, str(calib_source)
            )
        # transposed convolutions (SimplePose's upsampling) stay float: calibration does not
        # observe them and the gate has none to fall back
        float_layers = {
            layer["index"]: layer
            for layer in float_doc["report"]["offloaded"]["layers"]
            if layer["kind"] != "deconv"
        }
        known = {e["key"] for e in table["layers"]}
        missing = [i for i, layer in float_layers.items() if layer["key"] not in known]
        if missing:
            raise InvalidInputError(
                f"the calibration table does not cover layers {missing[:8]}"
                f"{'...' if len(missing) > 8 else ''} of {options.model} "
                "(made for other weights or another input size? recalibrate with --calib-data)"
            )
        sqnr = {e["key"]: e.get("sqnr_db") for e in table["layers"]}

        def build(
            writer: ArtifactWriter, keep_float: list[Any], for_target: Any = target
        ) -> tuple[list[dict], dict]:
            for name in float_doc["sha256"]:  # the ONNX model and any data files (SSD priors)
                if name not in (LIBRARY, WEIGHTS):
                    shutil.copyfile(float_dir / name, writer.path(name))
            inputs = calibration.table_inputs(table)
            return build_into(
                writer, for_target, kernels, {"inputs": inputs, "keep_float": keep_float}
            )

        keep: list[Any] = list(recipe.keep_float)
        gate: dict[str, Any] = {"max_drop_points": options.max_drop}
        # one arithmetic: integer Relax ops, XNNPACK (8-bit weights everywhere); oneDNN's
        # weight width depends on the CPU
        judged_bits: list[int | None] = [None]
        if kernels and kernels[0] == "dnnl":
            can, cannot = _weight_bits_to_judge(target.target.int8_weight_bits)
            judged_bits = list(can)
            gate["weight_bits"] = can
            if cannot:
                gate["weight_bits_not_measured"] = {
                    str(b): "this CPU has no VNNI: it cannot compute with 8-bit weights"
                    for b in cannot
                }
        float_metric = None
        if eval_set is not None:
            step(f"evaluating the float artifact on {len(eval_set)} images")
            float_metric = task.headline(evaluate(ArtifactModel(float_dir), eval_set))
            gate.update(metric=task.metric, float=round(float_metric, 3), images=len(eval_set))
        staging = Path(tmp) / "candidate"
        # layers ranked by how badly their input quantises: the fallback order of the gate
        ranked = sorted(
            float_layers, key=lambda i: sqnr.get(float_layers[i]["key"]) or float("inf")
        )
        extra = 0
        attempts: list[dict[str, Any]] = []
        while True:
            fallback = ranked[:extra]
            with ArtifactWriter(staging) as writer:
                step(
                    f"building the int8 library for {target.label}"
                    + (f" ({len(fallback)} most sensitive layers in float)" if fallback else "")
                )
                params, offloaded = build(writer, keep + fallback)
                device_code = _check_device_code(writer.path(LIBRARY), target)
                writer.commit({**float_doc, "params": params, "precision": "int8"})
            if eval_set is None:
                break
            judged = staging
            if not target.is_native:
                # the same int8 graph built for this machine (another architecture, or an x86
                # target whose CPU features this one lacks): int32 accumulation is exact, so it
                # scores what the device computes (up to float rounding in the epilogues)
                judged = Path(tmp) / "twin"
                with ArtifactWriter(judged) as writer:
                    step("building the same int8 graph for x86_64 to evaluate it here")
                    twin_params, _ = build(writer, keep + fallback, here)
                    twin = {**float_doc, "params": twin_params, "precision": "int8"}
                    writer.commit({**twin, "kernels": kernels} if reference_here else twin)
            scores = {}
            for bits in judged_bits:
                step(
                    f"evaluating the int8 artifact on {len(eval_set)} images"
                    + (f" ({bits}-bit weights)" if bits else "")
                )
                with _WeightBits(bits):
                    scores[bits] = task.headline(evaluate(ArtifactModel(judged), eval_set))
            int8_metric = min(scores.values())  # the worst CPU the target may run on
            drop = float_metric - int8_metric
            attempts.append(
                {
                    "float_layers": len(fallback),
                    "int8": round(int8_metric, 3),
                    "drop": round(drop, 3),
                    **(
                        {"by_weight_bits": {str(b): round(v, 3) for b, v in scores.items()}}
                        if None not in scores
                        else {}
                    ),
                }
            )
            if drop <= options.max_drop:
                gate.update(int8=round(int8_metric, 3), drop=round(drop, 3), passed=True)
                break
            if offloaded["int8"] == 0 or extra >= len(ranked):
                rows = "\n".join(
                    f"  layer {e['order']:>3} {e['kernel']:<22} input {str(e['input_shape']):<20} "
                    f"sqnr {e['sqnr_db']} dB  scale {e['scale']:.4g}"
                    for e in sorted(table["layers"], key=lambda e: e.get("sqnr_db") or 1e9)
                )
                raise EdgecvError(
                    f"int8 {options.model} loses {drop:.2f} points of {gate['metric']} "
                    f"(float {float_metric:.2f}, int8 {int8_metric:.2f}; allowed {options.max_drop}) "
                    f"even with layers in float; tries: {json.dumps(attempts)}\n"
                    f"per-layer sensitivity (input SQNR, worst first):\n{rows}"
                )
            extra = max(1, extra * 2)
        gate["attempts"] = attempts
        if fallback:
            gate["float_layers_added"] = fallback

        # parity with the float artifact on a real calibration-style input (reported, not
        # gated: int8 differs by design; the gate above is on the task metric)
        int8_doc = read_manifest(staging)
        agreement = (
            _agreement(float_dir, staging, calib_images)
            if target.is_native
            else {"not_run": f"built for {target.label}"}
        )
        with ArtifactWriter(out_dir) as writer:
            for name in int8_doc["sha256"]:
                shutil.copyfile(staging / name, writer.path(name))
            calibration.save_table(table, writer.path(CALIBRATION_FILE))
            report = dict(float_doc["report"])
            report["offloaded"] = offloaded
            report["int8"] = {
                "calibrator": table["calibrator"],
                "recipe": recipe.source,
                "calibration_images": table["images"],
                "calibration_data": table["data"],
                # which images: "built-in" (no --calib-data), "calib-data", or a saved "table"
                "calibration_set": (
                    calibration.BUILTIN_SET
                    if builtin
                    else "table"
                    if options.calibration_table
                    else "calib-data"
                ),
                "layers_int8": offloaded["int8"],
                "layers_float": [
                    e["index"] for e in offloaded["layers"] if e["precision"] != "int8"
                ],
                "vs_float": agreement,
                **({"accuracy": gate} if eval_set is not None else {}),
            }
            doc = {
                **int8_doc,
                "precision": "int8",
                "files": {**int8_doc["files"], "calibration": CALIBRATION_FILE},
                "report": report,
            }
            if device_code:  # GPU targets: the architectures in the library (build.py)
                report["device_code"] = device_code
            if reference_here:  # the reference was an x86 oneDNN build: describe the device's
                doc["target"], doc["kernels"] = target.manifest(), kernels
                report["int8"]["engine"] = (
                    "tvm (integer Relax operators)" if in_tvm else f"{kernels[0]} int8 kernels"
                )
                if not target.is_native:
                    report["parity"] = {
                        **report["parity"],
                        "tvm_vs_onnxruntime_max_abs": None,
                        "output_scale": None,
                        "tvm_not_run": f"built for {target.label}",
                    }
            doc.pop("sha256", None)
            return writer.commit(doc)


def _run_network(artifact: Path, x: np.ndarray) -> list[np.ndarray]:
    from .build import run_network

    doc = read_manifest(artifact)
    files = doc["files"]
    return run_network(artifact / files["library"], artifact / files["weights"], doc["params"], x)


def _agreement(float_dir: Path, int8_dir: Path, images: list[Path]) -> dict[str, Any]:
    """How far the int8 network's outputs are from float, relative to each output's largest
    magnitude, on one calibration image (random input when calibrated from a table)."""
    from .. import calibration
    from ..runtime import Predictor

    if images:
        image = next(iter(calibration.read_images(images[:1])))
        x = Predictor(float_dir).preprocess(image)[1]
        source = images[0].name
    else:
        shape = read_manifest(float_dir)["inputs"][0]["shape"]
        x = np.random.RandomState(0).uniform(-2, 2, shape).astype(np.float32)
        source = "random input"
    ref, got = _run_network(float_dir, x), _run_network(int8_dir, x)
    out: dict[str, Any] = {"input": source}
    for i, (u, v) in enumerate(zip(ref, got, strict=True)):
        scale = float(np.abs(u).max()) or 1.0
        out[f"output{i}_max_rel_error"] = round(float(np.abs(u - v).max()) / scale, 5)
        out[f"output{i}_mean_rel_error"] = round(float(np.abs(u - v).mean()) / scale, 6)
    return out
