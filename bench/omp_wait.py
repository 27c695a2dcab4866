"""OpenMP wait policy of the oneDNN kernels, on a quiet CPU and on a contended one.

oneDNN (Debian's OpenMP build) runs its parallel regions on libgomp's threads. Between
regions those threads spin for a while (libgomp's default) before they sleep. When another
process wants the same cores, a spinning thread takes CPU time from the thread the next
region waits for, and one inference can take several times as long. ``OMP_WAIT_POLICY=PASSIVE``
makes them sleep at once, at the price of a wake-up per region.

This script times the same artifacts with libgomp's default spin and PASSIVE (edgecv's
default since ``import edgecv`` sets it), each in its own process (libgomp reads the
variables when it loads), with no other load and then beside
``--busy`` busy-looping processes, and ONNX Runtime (its own thread pool) in the same
processes as the reference. It writes JSON and prints a table:

    python bench/omp_wait.py ARTIFACT [ARTIFACT ...] [--busy 1] [--repeat 30] --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgecv.bench import machine_info

# name -> the OpenMP environment of the run. libgomp without either variable spins 300000
# times before it sleeps; ``import edgecv`` sets PASSIVE unless one of them is set
POLICIES: dict[str, dict[str, str]] = {
    "libgomp-default": {"GOMP_SPINCOUNT": "300000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin-10k": {"GOMP_SPINCOUNT": "10000"},
}


def _bench(artifact: str, policy: dict[str, str], repeat: int) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(policy)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "edgecv", "bench", artifact, "--repeat", str(repeat)]
        run = subprocess.run(
            [*cmd, "--json", str(out)], env=env, capture_output=True, text=True, timeout=1800
        )
        if run.returncode != 0:
            raise SystemExit(f"edgecv bench failed on {artifact}:\n{run.stderr[-2000:]}")
        result = json.loads(out.read_text())["results"][0]
    return {
        "model": result["model"],
        "edgecv_median_ms": result["edgecv"]["median_ms"],
        "edgecv_p90_ms": result["edgecv"]["p90_ms"],
        "onnxruntime_median_ms": result["onnxruntime"]["median_ms"],
        "onnxruntime_p90_ms": result["onnxruntime"]["p90_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+")
    ap.add_argument("--busy", type=int, default=1, help="busy processes in the contended runs")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument(
        "--policies", default=",".join(POLICIES), help="which of: " + ", ".join(POLICIES)
    )
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)

    rows = []
    for load in (0, args.busy):
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        try:
            time.sleep(0.5 if busy else 0)
            for artifact in args.artifacts:
                for name in args.policies.split(","):
                    rows.append(
                        {"busy": load, "policy": name}
                        | _bench(artifact, POLICIES[name], args.repeat)
                    )
        finally:
            for p in busy:
                p.kill()
                p.wait()
    report = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "rows": rows}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["machine"]))
    print(
        "| model | busy processes | OpenMP waiting | edgecv median / p90 ms | ORT median / p90 ms |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['busy']} | {r['policy']} | {r['edgecv_median_ms']:.1f} / "
            f"{r['edgecv_p90_ms']:.1f} | {r['onnxruntime_median_ms']:.1f} / "
            f"{r['onnxruntime_p90_ms']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
