"""The ``edgecv`` command line.

Exit codes: 0 success · 1 error · 2 unknown name or bad usage · 3 invalid input ·
4 bad artifact · 5 parity check failed · 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import EdgecvError, InvalidInputError


class _Steps:
    """Prints numbered steps with their elapsed time (to stderr, so stdout stays data)."""

    def __init__(self) -> None:
        self.n = 0
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        self.n += 1
        print(
            f"[{self.n}] {message}  (+{time.perf_counter() - self.t0:.1f}s)",
            file=sys.stderr,
            flush=True,
        )


def cmd_list(args: argparse.Namespace) -> int:
    from .zoo.catalog import MODELS

    for spec in MODELS:
        if args.task in (None, spec.task):
            h, w = spec.data.input_size
            print(f"{spec.name:<22} {spec.task:<15} {spec.family:<13} {h}x{w}")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from .targets import list_targets

    for t in list_targets():
        where = t.host_triple or f"host: {t.host}"
        print(
            f"{t.name:<16} {t.device:<5} {','.join(t.precisions):<10} {where:<18} {t.description}"
        )
        for a in t.archs:
            host = f"host: {a.host or t.host}"
            print(f"  --arch {a.name:<14} {a.sm:<6} {host:<22} {a.description}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .deploy import export_model
    from .zoo.catalog import MODELS

    MODELS.get(args.model)  # fail fast on a typo, before any heavy import
    out = Path(args.out or f"{args.model}.onnx")
    path, bundle = export_model(args.model, out, args.input_size, args.pretrained)
    err = bundle.export_report["onnxruntime_vs_mxnet_max_abs"]
    print(f"wrote {path}  (ONNX Runtime vs MXNet max |Δ| {err:.2e}; with edgecv metadata)")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from .compile import CompileOptions, compile_bundle
    from .targets import check_toolchain, resolve_target

    onnx_file = args.model.endswith(".onnx")
    if onnx_file:
        for flag, value in (("--input-size", args.input_size), ("--pretrained", args.pretrained)):
            if value is not None:
                raise InvalidInputError(f"{flag} applies to zoo models, not to an ONNX file")
    else:
        from .zoo.catalog import MODELS

        MODELS.get(args.model)  # fail fast on a typo, before any heavy import
        if args.meta:
            raise InvalidInputError(
                "--meta describes an ONNX file: give MODEL.onnx, not a zoo name"
            )
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    target = resolve_target(args.target, args.arch, precision)  # refuses impossible combinations
    check_toolchain(target)
    options = CompileOptions(
        model=args.model,
        target=args.target,
        arch=args.arch,
        precision=precision,
        input_size=args.input_size,
        pretrained=args.pretrained,
        out_dir=args.out,
        kernels=args.kernels,
        calib_data=args.calib_data,
        calibration_table=args.calibration_table,
        calibrator=args.calibrator,
        calib_images=args.calib_images,
        keep_float=_layer_list(args.keep_float),
        eval_data=args.eval_data,
        max_drop=args.max_drop,
        tuning_db=args.tuning_db,
    )
    int8_only = [
        flag
        for flag, value in (
            ("--calib-data", args.calib_data),
            ("--calibration-table", args.calibration_table),
            ("--calibrator", args.calibrator),
            ("--calib-images", args.calib_images),
            ("--keep-float", args.keep_float),
            ("--eval-data", args.eval_data),
        )
        if value is not None
    ]
    if int8_only and precision != "int8":
        raise InvalidInputError(f"{', '.join(int8_only)} only apply with --int8")
    gpu = ", ".join(target.sms + ([f"PTX {target.ptx}"] if target.ptx else []))
    where = f"({target.host_triple}{', ' + gpu if gpu else ''})"
    if onnx_file:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="edgecv-byo-") as tmp:
            bundle = _onnx_bundle(Path(args.model), args.meta, Path(tmp))
            options.model = bundle.name
            print(
                f"edgecv compile: onnx={args.model} model={bundle.name} task={bundle.task} "
                f"target={target.label} {where} precision={precision} "
                f"input={bundle.input_shape} meta={args.meta or 'in the ONNX file'}",
                file=sys.stderr,
            )
            out = compile_bundle(Path(tmp) / "model.onnx", options, step=_Steps())
    else:
        from .deploy import compile_model, weights_label

        print(
            f"edgecv compile: model={options.model} target={target.label} {where} "
            f"precision={precision} input_size={options.input_size or 'model default'} "
            f"weights={weights_label(options.model, options.pretrained)}",
            file=sys.stderr,
        )
        out = compile_model(options, step=_Steps())
    print(out)
    return 0


def _onnx_bundle(path: Path, meta: str | None, tmp: Path):
    """The bundle to compile for an ONNX file: with --meta, the file plus that metadata
    (written to ``tmp/model.onnx``); without, the file's own edgecv metadata."""
    import onnx

    from .bundle import bundle_from_toml, load_onnx, read_bundle, write_metadata

    if meta is None:
        model, bundle = read_bundle(path)
    else:
        model = load_onnx(path)
        bundle = bundle_from_toml(meta, model, path.stem)
        write_metadata(model, bundle)
    onnx.save(model, str(tmp / "model.onnx"))
    return bundle


def cmd_tune(args: argparse.Namespace) -> int:
    from .deploy import TuneOptions, tune_model
    from .zoo.catalog import MODELS

    MODELS.get(args.model)
    summary = tune_model(
        TuneOptions(
            model=args.model,
            db=args.db,
            trials=args.trials,
            target=args.target,
            input_size=args.input_size,
            pretrained=args.pretrained,
            kernels=args.kernels,
            rpc=args.rpc,
            key=args.key,
        ),
        step=_Steps(),
    )
    print(json.dumps(summary, indent=2))
    return 0


def cmd_rpc(args: argparse.Namespace) -> int:
    import signal

    from .compile.rpc import parse_address, serve_board, serve_tracker

    def stop(*_: object) -> None:  # SIGTERM ends the tracker or server as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if args.role == "tracker":
        serve_tracker(args.host, args.port, args.port + 9)
    else:
        serve_board(
            parse_address(args.tracker, "--tracker"),
            args.key,
            args.host,
            args.port,
            args.port + 109,
            args.custom_addr,
        )
    return 0


def _layer_list(text: str | None) -> list[str | int] | None:
    """--keep-float "output,3,17": layer indices and names."""
    if text is None:
        return None
    return [int(t) if t.strip().isdigit() else t.strip() for t in text.split(",") if t.strip()]


def _write_image(path: str, image) -> None:
    import cv2

    from .errors import InvalidInputError

    if not cv2.imwrite(path, image):
        raise InvalidInputError(f"cannot write {path} (unknown extension or unwritable directory)")


def cmd_run(args: argparse.Namespace) -> int:
    from .errors import InvalidInputError
    from .pose_pipeline import PosePipeline
    from .runtime import Predictor, read_image
    from .tasks import TASKS
    from .viz import draw_detections

    predictor = Predictor(args.artifact)
    task = TASKS.get(predictor.task)
    if args.out and len(args.images) != 1:
        raise InvalidInputError("--out takes one input image")
    if task.name != "pose" and (args.boxes or args.detector):
        raise InvalidInputError("--boxes and --detector are for pose models")
    if args.boxes and args.detector:
        raise InvalidInputError("give person boxes by --boxes or by --detector, not both")
    pipeline = PosePipeline(args.detector, predictor, args.person_class) if args.detector else None
    boxes = _parse_boxes(args.boxes) if args.boxes else None
    results = []
    for path in args.images:
        image = read_image(path)
        people = None  # pose with --detector: the person detections drawn under the poses
        if pipeline is not None:
            people, res = pipeline.run(image)
        elif boxes is not None:
            res = predictor.run_pose(image, boxes)
        else:  # a pose model without boxes takes the whole image as the person
            res = predictor.run(
                image, top_k=args.top_k, iou_threshold=args.iou, max_detections=args.max_detections
            )
        entry, lines = task.describe(res, args.threshold)
        results.append({"image": path, **entry})
        drawn = None
        if args.out:
            under = draw_detections(image, people, 0.0) if people is not None else image
            drawn = task.draw(under, res, args.threshold)
        _report(args, path, lines, drawn)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _report(args: argparse.Namespace, path: str, lines: list[str], drawn) -> None:
    """One image's result lines (unless --json) and its drawing (with --out)."""
    if not args.json:
        print(path)
        print("\n".join(lines))
    if args.out:
        _write_image(args.out, drawn)
        print(f"wrote {args.out}", file=sys.stderr)


def _parse_boxes(text: str) -> list[list[float]]:
    from .errors import InvalidInputError

    boxes = []
    for part in filter(None, text.split(";")):
        try:
            box = [float(v) for v in part.split(",")]
        except ValueError:
            raise InvalidInputError(f"--boxes: {part!r} is not x1,y1,x2,y2") from None
        if len(box) != 4:
            raise InvalidInputError(f"--boxes: {part!r} is not x1,y1,x2,y2")
        boxes.append(box)
    return boxes


def cmd_info(args: argparse.Namespace) -> int:
    from .artifact import read_manifest

    doc = read_manifest(args.artifact)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"model      {doc['model']['name']} ({doc['model']['task']}, weights: {doc['model']['weights']})"
    )
    print(f"target     {doc['target']['name']} {doc['target']['tvm']}")
    print(f"precision  {doc['precision']}")
    for t in doc["inputs"]:
        print(f"input      {t['name']} {t['shape']} {t['dtype']}")
    for t in doc["outputs"]:
        print(f"output     {t['name']} {t['shape']} {t['dtype']}")
    print(f"preprocess {' → '.join(op['op'] for op in doc['preprocess'])}")
    print(f"postprocess {' → '.join(op['op'] for op in doc['postprocess'])}")
    print(f"classes    {len(doc['classes'])}")
    print(f"toolchain  {', '.join(f'{k} {v}' for k, v in doc['toolchain'].items())}")
    print(f"parity     {doc['report']['parity']}")
    q = doc["report"].get("int8")
    if q:
        acc = q.get("accuracy")
        gate = (
            f"; {acc['metric']} float {acc['float']} → int8 {acc['int8']} (drop {acc['drop']}, "
            f"allowed {acc['max_drop_points']})"
            if acc and "int8" in acc
            else "; accuracy not measured (no --eval-data)"
        )
        print(
            f"int8       {q['layers_int8']} layers int8, float: {q['layers_float'] or 'none'}; "
            f"{q['calibrator']} on {q['calibration_images']} images{gate}"
        )
    print("files      " + ", ".join(f"{k} (sha256 {v[:12]}…)" for k, v in doc["sha256"].items()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_artifact, format_breakdown, format_table, peak_gflops, write_report

    if args.rpc or args.key:
        return _bench_on_board(args)
    peak = peak_gflops()
    rows = [
        bench_artifact(
            a,
            warmup=args.warmup,
            repeat=args.repeat,
            threads=args.threads,
            peak=peak,
            breakdown=args.breakdown,
        )
        for a in args.artifacts
    ]
    print(format_table(rows))
    for row in rows if args.breakdown else []:
        print()
        print(format_breakdown(row))
    if args.json:
        write_report(rows, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _bench_on_board(args: argparse.Namespace) -> int:
    from .bench import bench_on_board, format_board_table, write_report

    if not (args.rpc and args.key):
        raise InvalidInputError("bench on a board needs both --rpc HOST:PORT and --key KEY")
    if args.breakdown:
        raise InvalidInputError("--breakdown profiles on this machine; it does not go with --rpc")
    rows = [
        bench_on_board(a, args.rpc, args.key, number=args.repeat, repeat=3) for a in args.artifacts
    ]
    print(format_board_table(rows))
    if args.json:
        write_report(rows, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .datasets.digits import generate

    root = generate(args.out, seed=args.seed, overwrite=args.overwrite)
    print(root)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .errors import InvalidInputError
    from .train import train
    from .train.recipes import load_recipe
    from .zoo.catalog import MODELS

    spec = MODELS.get(args.model)
    if spec.task != args.task:
        raise InvalidInputError(f"{args.model} is a {spec.task} model, not {args.task}")
    overrides = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "max_iters_per_epoch": args.max_iters,
        }.items()
        if v is not None
    }
    if args.contexts:
        overrides["contexts"] = tuple(args.contexts.split(","))
    if args.deterministic:
        overrides["deterministic"] = True
    # a worker started by `edgecv launch` (or a cluster's DMLC_* environment) joins the job
    kvstore = args.kvstore or ("dist_sync" if os.environ.get("DMLC_ROLE") == "worker" else None)
    if kvstore:
        overrides["kvstore"] = kvstore
    config = load_recipe(args.model, args.recipe, overrides)
    report = train(
        args.model,
        args.data,
        args.out,
        config,
        resume=args.resume,
        pretrained=args.pretrained,
        backbone=args.backbone,
        progress=not args.quiet,
        debug_dump=args.debug_dump,
    )
    print(
        json.dumps(
            {"weights": str(Path(args.out) / report["weights"]), "val": report["val"]},
            indent=2,
            default=float,
        )
    )
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    import shlex

    from .launch import DEFAULT_SSH, launch

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    env = {}
    for item in args.env or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--env takes KEY=VALUE, got {item!r}")
        env[key] = value
    return launch(
        command,
        args.workers,
        args.servers,
        hosts_file=args.hosts,
        port=args.port,
        scheduler_host=args.scheduler_host,
        log_dir=args.log_dir,
        env=env,
        ssh=tuple(shlex.split(args.ssh)) if args.ssh else DEFAULT_SSH,
        python=args.python or sys.executable,
        startup_timeout=args.startup_timeout,
        progress_every=args.progress_every,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from .datasets import open_dataset
    from .evaluate import evaluate, load_model

    model = load_model(args.model, pretrained=args.pretrained, input_size=args.input_size)
    dataset = open_dataset(args.data, args.split, model.task)
    report = evaluate(model, dataset, metrics=args.metric or (), limit=args.limit)
    report["model"] = str(args.model)
    report["data"] = str(args.data)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(json.dumps(report, indent=2, default=float))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .launch import DEFAULT_SSH
    from .tasks import TASKS

    p = argparse.ArgumentParser(
        prog="edgecv", description="Compile and run vision models on edge targets."
    )
    p.add_argument("--version", action="version", version=f"edgecv {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list zoo models")
    s.add_argument("--task", choices=TASKS.names())
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("targets", help="list compilation targets")
    s.set_defaults(func=cmd_targets)

    s = sub.add_parser(
        "export",
        help="export a zoo model to ONNX (checked against MXNet) with its edgecv metadata",
    )
    s.add_argument("model")
    s.add_argument("--out", help="output .onnx path (default MODEL.onnx)")
    s.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    s.add_argument("--pretrained", help="local .params weights file (default: random init)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser(
        "compile", help="compile a zoo model or an ONNX file into an artifact directory"
    )
    s.add_argument("model", help="zoo model name, or MODEL.onnx (edgecv export's, or with --meta)")
    s.add_argument(
        "--meta", help="TOML metadata of an ONNX file edgecv did not export (see the README)"
    )
    s.add_argument("--target", default="x86_64", help="target name (see `edgecv targets`)")
    s.add_argument(
        "--arch",
        help="GPU targets: only this GPU, e.g. sm_86 (default: every architecture the target "
        "lists, plus PTX for newer GPUs)",
    )
    s.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    s.add_argument("--pretrained", help="local .params weights file (default: random init)")
    s.add_argument("--out", help="artifact directory (default artifacts/MODEL-TARGET-PRECISION)")
    s.add_argument(
        "--kernels",
        default="auto",
        choices=["auto", "tvm", "dnnl", "xnnpack"],
        help="where convolutions and dense layers run: a kernel library the target offers "
        "(dnnl: oneDNN, x86; xnnpack: XNNPACK, ARM and x86) or TVM-generated code (tvm); auto: "
        "the target's first library (when the runtime here has it, for this machine's targets)",
    )
    prec = s.add_mutually_exclusive_group()
    prec.add_argument(
        "--fp16", action="store_true", help="half precision (targets that support it)"
    )
    prec.add_argument(
        "--int8", action="store_true", help="int8 with calibration (targets that support it)"
    )
    q = s.add_argument_group("int8 calibration and accuracy gate")
    q.add_argument(
        "--calib-data", help="calibration images: a folder (any depth) or a dataset root"
    )
    q.add_argument(
        "--calibration-table",
        help="reuse a calibration table (calibration.json of an int8 artifact)",
    )
    q.add_argument(
        "--calibrator", choices=["minmax", "entropy", "percentile"], help="override the recipe's"
    )
    q.add_argument("--calib-images", type=int, help="how many images to calibrate on (recipe's)")
    q.add_argument(
        "--keep-float",
        help="layers kept in float, comma separated: indices in graph order, 'input', 'output' "
        "(default: the model's recipe in calibration/recipes)",
    )
    q.add_argument(
        "--eval-data",
        help="held-out dataset: measure the task metric of int8 against float and enforce --max-drop",
    )
    q.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        help="points of the task's headline metric that int8 may lose (default 1.0; "
        + ", ".join(f"{t.name}: {t.metric_label}" for t in TASKS)
        + "); beyond it the most sensitive layers go back to float, or the compile fails "
        "with a per-layer table",
    )
    s.add_argument(
        "--tuning-db", help="apply this MetaSchedule database (made by `edgecv tune`), no tuning"
    )
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser(
        "tune", help="tune TVM's generated code for a model (MetaSchedule) into a reusable database"
    )
    s.add_argument("model")
    s.add_argument("--db", required=True, help="database directory (created, or extended)")
    s.add_argument("--trials", type=int, default=64, help="measured trials in all (default 64)")
    s.add_argument(
        "--target", default="x86_64", help="a target this machine runs, or the boards' (--rpc)"
    )
    s.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    s.add_argument("--pretrained", help="local .params weights file")
    s.add_argument("--kernels", default="auto", help="as for compile: auto | dnnl | xnnpack | tvm")
    s.add_argument("--rpc", help="HOST:PORT of a TVM RPC tracker: measure candidates on its boards")
    s.add_argument("--key", help="with --rpc: the boards' key (as given to `edgecv rpc server`)")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser(
        "rpc", help="device farm: TVM's RPC tracker, or an RPC server on a board (trusted networks)"
    )
    roles = s.add_subparsers(dest="role", required=True)
    r = roles.add_parser("tracker", help="the tracker that boards register with (needs tornado)")
    r.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    r.add_argument("--port", type=int, default=9190, help="first port tried (default 9190)")
    r.set_defaults(func=cmd_rpc)
    r = roles.add_parser("server", help="TVM's RPC server with edgecv's kernels, on a board")
    r.add_argument("--tracker", required=True, help="HOST:PORT of the tracker")
    r.add_argument("--key", required=True, help="the board kind jobs ask for, e.g. rpi5")
    r.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    r.add_argument("--port", type=int, default=9090, help="first port tried (default 9090)")
    r.add_argument("--custom-addr", help="the address to report to the tracker (NAT, etc.)")
    r.set_defaults(func=cmd_rpc)

    s = sub.add_parser("run", help="run an artifact on images: classes, detections, masks, poses")
    s.add_argument("artifact")
    s.add_argument("images", nargs="+")
    s.add_argument("--top-k", type=int, default=None, help="classification: classes shown")
    s.add_argument("--threshold", type=float, default=0.5, help="detection: score shown/drawn")
    s.add_argument(
        "--iou", type=float, default=None, help="detection: NMS IoU (manifest's default)"
    )
    s.add_argument("--max-detections", type=int, default=None, help="detection: kept after NMS")
    s.add_argument(
        "--boxes",
        help="pose: person boxes 'x1,y1,x2,y2;...' in image pixels (default: whole image)",
    )
    s.add_argument("--detector", help="pose: a detector artifact that finds the people first")
    s.add_argument("--person-class", default="person", help="pose: the detector's person class")
    s.add_argument(
        "--out",
        help="write the image with results drawn (one input image): boxes, classes, the "
        "segmentation mask blended in, or skeletons",
    )
    s.add_argument("--json", action="store_true", help="print results as JSON")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("info", help="show and verify an artifact's manifest")
    s.add_argument("artifact")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("bench", help="latency of artifacts vs ONNX Runtime (same process)")
    s.add_argument("artifacts", nargs="+")
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--repeat", type=int, default=10)
    s.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    s.add_argument("--json", help="write results to this JSON file")
    s.add_argument(
        "--breakdown",
        action="store_true",
        help="also profile both sides: time per kind of operator (conv 1x1, conv kxk, "
        "depthwise, dense, pooling, TVM code, runtime)",
    )
    s.add_argument(
        "--rpc",
        help="HOST:PORT of a TVM RPC tracker: time the network on a board instead (see README)",
    )
    s.add_argument("--key", help="with --rpc: the boards' key")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("data", help="write the digits dataset (classification, VOC, COCO layouts)")
    s.add_argument("name", choices=["digits"])
    s.add_argument("--out", required=True, help="folder to create")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("train", help="train a zoo model with edgecv's recipes")
    s.add_argument("task", choices=TASKS.names())
    s.add_argument("model")
    s.add_argument(
        "--data",
        required=True,
        help="dataset path: class folders, .rec, VOC or COCO root (COCO keypoints for pose)",
    )
    s.add_argument("--out", required=True, help="run folder (log, checkpoints, weights, report)")
    s.add_argument("--recipe", help="JSON training recipe (default: the model's own, if any)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--seed", type=int)
    s.add_argument("--max-iters", type=int, help="cap on steps per epoch (smoke runs)")
    s.add_argument(
        "--contexts", help="comma-separated MXNet devices, e.g. gpu:0,gpu:1 (default cpu)"
    )
    s.add_argument("--pretrained", help="start from these .params")
    s.add_argument(
        "--backbone", help="detection: a classification model's .params for the backbone"
    )
    s.add_argument("--resume", action="store_true", help="continue the run in --out")
    s.add_argument(
        "--deterministic",
        action="store_true",
        help="one OpenMP thread: the same seed gives the same weights bit for bit",
    )
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.add_argument(
        "--kvstore",
        choices=["device", "local", "dist_sync", "dist_device_sync", "dist_async"],
        help="MXNet kvstore; dist_*: one worker of an `edgecv launch` job (the default there: "
        "dist_sync; batch size per worker, lr x workers, see the README)",
    )
    s.add_argument(
        "--debug-dump",
        metavar="DIR",
        help="write per-step loss and weight digests to DIR/rank-N.jsonl (checks that the "
        "workers of a job hold the same weights)",
    )
    s.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "launch",
        help="run a distributed training job: MXNet's scheduler, servers and workers",
        description="Start MXNet's parameter-server job (scheduler, servers, workers with the "
        "DMLC_* environment) here or over ssh, merge the workers' progress, and stop "
        "everything when one process fails. Example: edgecv launch --workers 2 -- edgecv "
        "train classification mobilenet0.25_digits --data digits/classification --out run",
    )
    s.add_argument("--workers", type=int, required=True)
    s.add_argument("--servers", type=int, default=1)
    s.add_argument(
        "--hosts", help="file of ssh destinations, one a line (default: all on this machine)"
    )
    s.add_argument("--port", type=int, help="scheduler port (default: a free one)")
    s.add_argument(
        "--scheduler-host",
        help="this machine's address as the hosts reach it (default: 127.0.0.1, or the "
        "address on the route to the first host)",
    )
    s.add_argument(
        "--log-dir", default="launch-logs", help="per-process logs (default %(default)s)"
    )
    s.add_argument(
        "--env", action="append", metavar="KEY=VALUE", help="extra environment for every node"
    )
    s.add_argument("--ssh", help=f"ssh command (default: {' '.join(DEFAULT_SSH)})")
    s.add_argument("--python", help="servers' and scheduler's python (default: this one)")
    s.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds a worker may take to join the job (default %(default)s)",
    )
    s.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        help="seconds between merged progress lines (default %(default)s; and each epoch's end)",
    )
    s.add_argument("command", nargs=argparse.REMAINDER, help="-- the workers' command")
    s.set_defaults(func=cmd_launch)

    s = sub.add_parser("eval", help="accuracy of a zoo model (float) or an artifact on a dataset")
    s.add_argument("model", help="artifact directory or zoo model name")
    s.add_argument("--data", required=True)
    s.add_argument("--split", default="val")
    s.add_argument("--pretrained", help="float model: .params (default: shipped weights)")
    s.add_argument("--input-size", type=int, help="float model: square input side")
    s.add_argument("--metric", action="append", choices=["coco"], help="extra metrics")
    s.add_argument("--limit", type=int, help="first N images only")
    s.add_argument("--json", help="also write the report to this file")
    s.set_defaults(func=cmd_eval)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgecvError as err:
        print(f"edgecv: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("edgecv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
