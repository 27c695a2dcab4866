"""Instructions per inference of aarch64 artifacts, counted under qemu-aarch64: a proxy for
their speed on a board (int8 against fp32) while no board is at hand. NOT a time.

    python bench/qemu_insn.py ART [ART ...] [--runs 5] [--json bench/results-qemu-insn-aarch64.json]
    python bench/qemu_insn.py --model mobilenet0.25_digits [--model resnet18_v1b:128 ...] \\
        --calib-data DIGITS/classification/train [--targets rpi4 rpi5] \\
        [--artifacts-dir build/qemu-insn/artifacts]

Each artifact runs in the aarch64 runtime wheel (NumPy + edgecv's runtime, as on a board) in
Debian's arm64 CPython under qemu-aarch64, with the CPU model of its board (``-cpu
cortex-a72`` for rpi4, ``cortex-a76`` for rpi5 and jetson-orin-cpu, ``max`` otherwise: XNNPACK
picks its kernels from the CPU features qemu reports, e.g. dot-product ones on the A76) and
one thread (a thread pool's idle spinning would be counted). bench/qemu_insn_plugin.c, a TCG
plugin built by ``make build/qemu-insn/libqemu_insn.so``, counts the guest instructions
executed; the guest marks each inference (``Predictor.run_tensor`` on a seeded random input:
the network, post-processing and the Python call around them) after ``--warmup`` untimed
ones, so that loading, weight packing and first-touch costs are left out. The counts are also
split by the library whose code executed them (XNNPACK, edgecv's runtime module, model.so's
TVM code, libc, ...): the plugin reports instructions per code page at the first and last
marker, the guest's /proc/self/maps names the pages.

What the counts are and are not: instructions retired by the emulated CPU, all kinds weighted
alike. A NEON ``sdot`` (16 multiply-adds) counts as one, like a scalar add; stalls, caches,
memory bandwidth, issue width and the core's clock are not modelled. Under the same -cpu,
fewer instructions for the same network mean less work for the core, not proportionally less
time; only a board (bench/board.py) measures time.

``--model NAME[:SIZE]`` compiles the model here (the full edgecv package: TVM and MXNet; at
input size SIZE if given) for each target, fp32 and int8 (calibrated on ``--calib-data`` once
per model, the table reused by the other targets; a model without shipped weights gets one
random weights file for all its artifacts); given artifact directories, nothing is compiled. Needs what ``make wheel-deps`` sets up
(qemu-user, the cross toolchain, build/python/aarch64, NumPy's aarch64 wheel)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "build" / "qemu-insn"
PLUGIN = WORK / "libqemu_insn.so"
CROSS_PYTHON = REPO / "build" / "python" / "aarch64"
NUMPY_WHEELS = REPO / "build" / "python" / "numpy-wheels"
MARKER = 4000  # the plugin's marker "system call" (none has this number: ENOSYS)
# qemu's CPU model per target: the board's core, so that XNNPACK sees the board's features
QEMU_CPU = {"rpi4": "cortex-a72", "rpi5": "cortex-a76", "jetson-orin-cpu": "cortex-a76"}

# Runs inside the emulated arm64 Python: argv[1] a job file. Marks 2*i before artifact i's
# first counted inference and 2*i + 1 after each of its inferences; the first and the last of
# those also ask for the instructions per code page so far (second argument 1). Writes the
# guest's memory map at the end (every predictor still open) to attribute pages to libraries.
GUEST = """
import ctypes, gc, json, sys
job = json.load(open(sys.argv[1]))
import numpy as np
from edgecv.runtime import Predictor
syscall = ctypes.CDLL(None).syscall
syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_long]
kept = []
for i, art in enumerate(job["artifacts"]):
    p = Predictor(art)
    kept.append(p)
    x = np.random.RandomState(0).uniform(-2, 2, p.input_shape).astype(np.float32)
    for _ in range(job["warmup"]):
        p.run_tensor(x)
    gc.collect()
    gc.disable()
    syscall(job["marker"], 2 * i, 1)
    for run in range(job["runs"]):
        p.run_tensor(x)
        syscall(job["marker"], 2 * i + 1, int(run == job["runs"] - 1))
    gc.enable()
open(job["maps"], "w").write(open("/proc/self/maps").read())
"""


def _run(cmd: list[Any], **kw: Any) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if res.returncode != 0:
        sys.exit(f"qemu_insn.py: {' '.join(map(str, cmd))} failed:\n{res.stderr[-3000:]}")
    return res


def build_plugin() -> Path:
    """The TCG plugin, built (or brought up to date) by the project's Makefile."""
    _run(["make", "-s", "-C", REPO, str(PLUGIN.relative_to(REPO))])
    return PLUGIN


def guest_site(wheel_dir: Path | None) -> Path:
    """NumPy's aarch64 wheel and the aarch64 runtime wheel unpacked into one folder, the
    guest's PYTHONPATH (the wheel built by packaging/runtime/build_wheel.py unless
    ``wheel_dir`` holds one)."""
    if wheel_dir is None:
        wheel_dir = WORK / "wheel"
        builder = REPO / "packaging" / "runtime" / "build_wheel.py"
        _run([sys.executable, builder, "--arch", "aarch64", "--out", wheel_dir])
    wheels = sorted(wheel_dir.glob("edgecv_runtime-*-manylinux_*_aarch64.whl"))
    numpy = sorted(NUMPY_WHEELS.glob("numpy-*aarch64.whl"))
    if len(wheels) != 1 or not numpy:
        sys.exit(f"qemu_insn.py: need one aarch64 runtime wheel in {wheel_dir} and NumPy's in "
                 f"{NUMPY_WHEELS} (make wheel-deps): found {wheels}, {numpy}")  # fmt: skip
    site = WORK / "site"
    for wheel in (numpy[0], wheels[0]):
        zipfile.ZipFile(wheel).extractall(site)
    for so in site.rglob("*.so*"):  # zipfile drops the mode bits
        so.chmod(0o755)
    return site


def count(
    artifacts: list[Path], cpu: str, site: Path, runs: int, warmup: int, scratch: Path
) -> list[dict[str, Any]]:
    """Instructions per inference of each artifact, all run in one emulated process."""
    python = CROSS_PYTHON / "usr" / "bin" / "python3.11"
    if not python.is_file():
        sys.exit(f"qemu_insn.py: no arm64 CPython in {CROSS_PYTHON}: run `make wheel-deps`")
    scratch.mkdir(parents=True, exist_ok=True)
    job = {"artifacts": [str(a) for a in artifacts], "runs": runs, "warmup": warmup,
           "marker": MARKER, "maps": str(scratch / "maps.txt")}  # fmt: skip
    (scratch / "job.json").write_text(json.dumps(job))
    (scratch / "guest.py").write_text(GUEST)
    counts = scratch / "counts.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONHOME")}
    env.update(PYTHONPATH=str(site), EDGECV_NUM_THREADS="1", TVM_NUM_THREADS="1",
               OMP_NUM_THREADS="1")  # fmt: skip
    plugin = f"{build_plugin()},out={counts},marker={MARKER}"
    cmd = ["qemu-aarch64", "-cpu", cpu, "-L", CROSS_PYTHON, "-plugin", plugin, python,
           scratch / "guest.py", scratch / "job.json"]  # fmt: skip
    _run(cmd, env=env, cwd=scratch, timeout=3600)
    marks: dict[int, list[int]] = {}
    pages: dict[int, dict[int, int]] = {}
    for line in counts.read_text().splitlines():
        kind, *values = line.split()
        if kind == "mark":
            marks.setdefault(int(values[0]), []).append(int(values[1]))
        elif kind == "page":
            pages.setdefault(int(values[0]), {})[int(values[1])] = int(values[2])
    code = _code_mappings((scratch / "maps.txt").read_text())
    rows = []
    for i, art in enumerate(artifacts):
        start, ends = marks[2 * i], marks[2 * i + 1]
        points = [*start, *ends]
        per = [b - a for a, b in zip(points[:-1], points[1:], strict=True)]
        doc = json.loads((art / "manifest.json").read_text())
        rows.append(
            {
                "artifact": str(art),
                "model": doc["model"]["name"],
                "target": doc["target"]["name"],
                "precision": doc["precision"],
                "kernels": doc.get("kernels", []),
                "input_shape": doc["inputs"][0]["shape"],
                "qemu_cpu": cpu,
                "runs": len(per),
                "insns_per_inference": {
                    "median": statistics.median(per), "min": min(per), "max": max(per),
                },
                "insns_per_inference_by_code": _by_code(
                    pages[2 * i], pages[2 * i + 1], code, len(per)
                ),
            }
        )  # fmt: skip
    return rows


def _code_mappings(maps: str) -> list[tuple[int, int, str]]:
    """(start, end, file name) of the guest's executable mappings, from its /proc/self/maps."""
    out = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and "x" in fields[1]:
            start, end = (int(v, 16) for v in fields[0].split("-"))
            out.append((start, end, Path(fields[5].strip()).name))
    return out


def _code_group(name: str) -> str:
    """The part of the program a file is: the artifact's TVM code, a kernel library, the
    runtime, or the Python around them."""
    if name == "model.so" or name.startswith("tvm_"):
        return "model.so (TVM-generated code)"
    if name.startswith("_runtime."):
        return "edgecv runtime (_runtime*.so: kernel glue, pre/post-processing)"
    for prefix, group in (("libXNNPACK", "XNNPACK"), ("libpthreadpool", "pthreadpool"),
                          ("libtvm_runtime", "TVM runtime (Relax VM)"),
                          ("libtvm_ffi", "TVM FFI"), ("libc.so", "libc"), ("libm.so", "libm"),
                          ("libstdc++", "libstdc++")):  # fmt: skip
        if name.startswith(prefix):
            return group
    return "Python, NumPy and the rest"


def _by_code(
    before: dict[int, int], after: dict[int, int], code: list[tuple[int, int, str]], runs: int
) -> dict[str, float]:
    """Instructions per inference by the part of the program that executed them."""
    groups: dict[str, float] = {}
    for page, n in after.items():
        delta = n - before.get(page, 0)
        if delta <= 0:
            continue
        name = next((f for s, e, f in code if s <= page < e), "")
        group = _code_group(name) if name else "unmapped at the end"
        groups[group] = groups.get(group, 0) + delta / runs
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


def _one_set_of_weights(model: str, size: int, out: Path) -> str | None:
    """None for a model with shipped weights (edgecv/weights/); else one file of its random
    initial weights, so that every artifact of it (fp32, int8, each target) is the same
    network and one calibration table fits them all."""
    if (REPO / "edgecv" / "weights" / f"{model}.params").is_file():
        return None
    import mxnet as mx
    import numpy as np

    import edgecv

    net = edgecv.get_model(model)
    net(mx.nd.array(np.zeros((1, 3, size, size), np.float32)))  # materialise deferred shapes
    path = out / f"{model}-random.params"
    net.save_parameters(str(path))
    return str(path)


def compile_artifacts(
    model: str, input_size: int | None, targets: list[str], calib: Path, out: Path
) -> list[Path]:
    """fp32 and int8 artifacts of ``model`` for each target (one calibration)."""
    from edgecv.compile import CompileOptions, compile_model

    out.mkdir(parents=True, exist_ok=True)
    weights = _one_set_of_weights(model, input_size or 224, out)
    arts, table = [], None
    for target in targets:
        for precision in ("fp32", "int8"):
            extra: dict[str, Any] = {}
            if precision == "int8":
                extra = ({"calibration_table": str(table)} if table
                         else {"calib_data": str(calib)})  # fmt: skip
            size = f"-{input_size}" if input_size else ""
            directory = out / f"{model}{size}-{target}-{precision}"
            print(f"compiling {directory.name}", file=sys.stderr)
            arts.append(compile_model(CompileOptions(
                model, target=target, precision=precision, input_size=input_size,
                pretrained=weights, out_dir=str(directory), **extra)))  # fmt: skip
            if precision == "int8" and table is None:
                table = arts[-1] / "calibration.json"
    return arts


def _variant(row: dict[str, Any]) -> str:
    """Precision and the kernels the artifact calls, e.g. 'int8 xnnpack', 'int8 tvm'."""
    return f"{row['precision']} {'+'.join(row['kernels']) or 'tvm'}"


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each non-fp32 artifact against the fp32 one of the same model and target (its default
    kernels: XNNPACK): instruction counts and their ratio."""
    out = []
    for r in rows:
        if r["precision"] == "fp32":
            continue
        base = next((f for f in rows if f["precision"] == "fp32" and f["model"] == r["model"]
                     and f["target"] == r["target"]), None)  # fmt: skip
        if base:
            fp32 = base["insns_per_inference"]["median"]
            mine = r["insns_per_inference"]["median"]
            out.append({"model": r["model"], "target": r["target"],
                        "compare": f"{_variant(r)} vs {_variant(base)}", "fp32_insns": fp32,
                        "insns": mine, "fp32_over": fp32 / mine})  # fmt: skip
    return out


def format_table(report: dict[str, Any]) -> str:
    head = f"{'model':<24} {'input':<10} {'target':<8} {'qemu -cpu':<11} {'variant':<14} {'Minsn/inference':>16} {'min..max':>20}"  # noqa: E501
    lines = ["instruction counts under qemu-aarch64 (TCG): a proxy, not time", head,
             "-" * len(head)]  # fmt: skip
    for r in report["results"]:
        n = r["insns_per_inference"]
        lines.append(
            f"{r['model']:<24} {'x'.join(map(str, r['input_shape'][2:])):<10} {r['target']:<8} "
            f"{r['qemu_cpu']:<11} {_variant(r):<14} {n['median'] / 1e6:>16.3f} "
            f"{n['min'] / 1e6:>9.3f}..{n['max'] / 1e6:<9.3f}"
        )
    for c in report["comparisons"]:
        lines.append(
            f"{c['model']} {c['target']}: {c['compare']}: fp32 executes {c['fp32_over']:.2f}x "
            "the instructions"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifacts", nargs="*", type=Path)
    ap.add_argument("--model", action="append", default=[], metavar="NAME[:SIZE]",
                    help="compile this zoo model (fp32 + int8) for --targets")  # fmt: skip
    ap.add_argument("--calib-data", type=Path, help="int8 calibration images (with --model)")
    ap.add_argument("--targets", nargs="+", default=["rpi4", "rpi5"])
    ap.add_argument("--artifacts-dir", type=Path, default=WORK / "artifacts")
    ap.add_argument("--runs", type=int, default=5, help="counted inferences per artifact")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--wheel-dir", type=Path, default=None, help="holds the aarch64 wheel")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.model and not args.artifacts:
        ap.error("give artifact directories and/or --model NAME[:SIZE] (with --calib-data)")
    if args.model and not (args.calib_data and args.calib_data.is_dir()):
        ap.error("--model needs --calib-data DIR (int8 calibration images)")
    if args.runs < 1 or args.warmup < 1:
        ap.error("--runs and --warmup must be >= 1")
    git = ["git", "-C", REPO]
    source = {  # the wheel and the artifacts are built from the working tree as it is
        "commit": _run([*git, "rev-parse", "HEAD"]).stdout.strip(),
        "uncommitted": _run(
            [*git, "status", "--porcelain", "--", "edgecv", "runtime_cpp"]
        ).stdout.split("\n")[:-1],
    }
    arts = list(args.artifacts)
    for spec in args.model:
        name, _, size = spec.partition(":")
        if size and not size.isdigit():
            ap.error(f"--model takes NAME[:SIZE], got {spec!r}")
        arts += compile_artifacts(
            name, int(size) if size else None, args.targets, args.calib_data, args.artifacts_dir
        )
    for art in arts:
        if not (art / "manifest.json").is_file():
            ap.error(f"{art}: not an artifact directory (no manifest.json)")
    site = guest_site(args.wheel_dir)
    by_cpu: dict[str, list[Path]] = {}
    for art in arts:
        doc = json.loads((art / "manifest.json").read_text())
        if not doc["target"]["host_triple"].startswith("aarch64"):
            ap.error(f"{art}: built for {doc['target']['host_triple']}, not aarch64")
        by_cpu.setdefault(QEMU_CPU.get(doc["target"]["name"], "max"), []).append(art)
    rows = []
    for cpu, group in by_cpu.items():
        print(f"counting under -cpu {cpu}: {', '.join(a.name for a in group)}", file=sys.stderr)
        rows += count(group, cpu, site, args.runs, args.warmup, WORK / "run" / cpu)
    qemu = _run(["qemu-aarch64", "--version"]).stdout.splitlines()[0]
    report = {
        "schema": "edgecv.qemu-insn", "schema_version": 1,
        "what": "guest instructions executed per inference under qemu-aarch64 TCG emulation "
                "(one thread, counted by bench/qemu_insn_plugin.c): an instruction-count proxy, "
                "not time; every instruction counts 1 (an sdot as a scalar add)",
        "qemu": qemu, "source": source, "runs": args.runs, "warmup": args.warmup,
        "results": rows, "comparisons": ratios(rows),
    }  # fmt: skip
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
