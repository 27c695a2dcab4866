"""`edgecv tune`: a MetaSchedule database that compile applies without tuning again, that a
second tune extends, and whose artifact computes what the untuned one does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgecv.artifact import read_manifest
from edgecv.compile import CompileOptions, compile_model
from edgecv.compile.tune import database_records
from edgecv.deploy import TuneOptions, tune_model
from edgecv.errors import InvalidInputError
from edgecv.runtime import Predictor

from conftest import SAMPLE_IMAGE

pytestmark = pytest.mark.integration

MODEL, SIZE = "mobilenet0.25_digits", 32


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> tuple[Path, dict]:
    db = tmp_path_factory.mktemp("tune") / "db"
    summary = tune_model(TuneOptions(MODEL, str(db), trials=4, input_size=SIZE, kernels="tvm"))
    return db, summary


def test_tune_writes_a_database_and_extends_it(database, tmp_path):
    db, summary = database
    assert summary["tasks"] > 10 and summary["kernels"] == []
    assert summary["records"] == summary["records_added"] == database_records(db) == 4
    assert json.loads((db / "edgecv-tune.json").read_text())["records"] == 4
    extended = tmp_path / "db"
    shutil.copytree(db, extended)
    more = tune_model(TuneOptions(MODEL, str(extended), trials=2, input_size=SIZE, kernels="tvm"))
    assert more["records_added"] == 2 and more["records"] == 6  # resumed, not restarted


def test_compile_applies_the_database_and_agrees_with_untuned(database, tmp_path):
    db, _ = database
    arts = {
        name: compile_model(
            CompileOptions(MODEL, input_size=SIZE, kernels="tvm", tuning_db=tuning,
                           out_dir=str(tmp_path / name))
        )
        for name, tuning in (("tuned", str(db)), ("untuned", None))
    }  # fmt: skip
    doc = read_manifest(arts["tuned"])
    assert doc["report"]["tuning"] == {"database": str(db), "records": 4}
    assert doc["report"]["parity"]["tvm_vs_onnxruntime_max_abs"] is not None  # checked vs ORT
    assert "tuning" not in read_manifest(arts["untuned"])["report"]
    # the schedules changed the generated code, not what it computes
    assert (arts["tuned"] / "model.so").read_bytes() != (arts["untuned"] / "model.so").read_bytes()
    from edgecv.runtime import read_image

    image = read_image(SAMPLE_IMAGE)
    a = Predictor(arts["tuned"]).run(image, top_k=0).outputs[0]
    b = Predictor(arts["untuned"]).run(image, top_k=0).outputs[0]
    assert float(np.abs(a - b).max()) <= 1e-4 * float(np.abs(b).max())


def test_bad_tuning_requests_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot run rpi5 code"):
        tune_model(TuneOptions(MODEL, str(tmp_path / "db"), trials=2, target="rpi5"))
    with pytest.raises(InvalidInputError, match="at least 1"):
        tune_model(TuneOptions(MODEL, str(tmp_path / "db"), trials=0))
    out = subprocess.run(
        [str(Path(__import__("sys").executable).parent / "edgecv"), "compile", MODEL,
         "--tuning-db", str(tmp_path / "nothing"), "--out", str(tmp_path / "art")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 3 and "tuning database not found" in out.stderr, out.stderr
    assert not (tmp_path / "art").exists()
