"""The full zoo sweep: every model of the catalog through the parity tests that the ordinary
run (`make test`) takes one representative per family of (tests/conftest.py:zoo_models).

    python -m tests.sweep            # or: make sweep
    python -m tests.sweep -x -k ssd  # more pytest arguments

Runs those tests with EDGECV_SWEEP=1 and records, per model, the outcome of each of its tests
in tests/sweep-result.json (with the catalog and the commit it ran on); tests/test_tiers.py
checks that the record covers the catalog and that nothing in it failed. Roughly half an hour
on a 2-core AVX-512 machine, an hour on a 2-core AVX2 one (from per-model times: resnet152_v1
38 s, yolo3_darknet53_coco 67 s, ssd_512_vgg16_atrous_voc 42 s there): run it when a model or
a family changes, and commit the record.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "tests" / "sweep-result.json"
SWEEP_TESTS = [
    "tests/test_parity.py::test_chain_parity",
    "tests/test_detection.py::test_detector_parity",
    "tests/test_dense.py::test_segmentation_parity",
    "tests/test_dense.py::test_pose_parity",
    "tests/test_zoo_gluoncv.py",
]
TASKS = ("classification", "detection", "segmentation", "pose")


def _outcomes(junit: Path) -> dict[str, dict[str, str]]:
    """model -> {test name: passed | failed | skipped} from a pytest JUnit XML report."""
    models: dict[str, dict[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        m = re.fullmatch(r"(\w+)\[(.+)\]", case.get("name", ""))
        if not m:
            continue
        test, model = m.groups()
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        models.setdefault(model, {})[test] = outcome
    return models


def main(argv: list[str]) -> int:
    import edgecv

    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "sweep.xml"
        # -P: the checkout's directory stays off sys.path, so the tests import the installed
        # package (C++ module included), not the source tree
        cmd = [sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-ra"]
        cmd += [f"--junitxml={junit}", *SWEEP_TESTS, *argv]
        t0 = time.time()
        code = subprocess.run(cmd, cwd=REPO, env={**os.environ, "EDGECV_SWEEP": "1"}).returncode
        if not junit.is_file():
            return code or 1
        models = _outcomes(junit)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    record = {
        "commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "minutes": round((time.time() - t0) / 60, 1),
        "pytest_args": argv,
        "catalog": {t: edgecv.list_models(task=t) for t in TASKS},
        "models": dict(sorted(models.items())),
    }
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    print(f"recorded {len(models)} models in {RECORD.relative_to(REPO)}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
