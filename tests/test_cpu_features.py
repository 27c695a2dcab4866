"""CPU features an artifact's machine code needs: recorded from the target, checked by the
runtime before the library is loaded."""

from __future__ import annotations

import shutil

import pytest

from edgecv.errors import ArtifactError
from edgecv.runtime import Predictor

from conftest import SAMPLE_IMAGE

pytestmark = pytest.mark.integration


@pytest.fixture
def artifact_copy(small_artifact, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(small_artifact, dst)
    return dst


def _with_cpu_features(artifact, features: list[str]) -> None:
    from edgecv.artifact import read_manifest, seal_manifest

    doc = read_manifest(artifact, verify_files=False)
    doc.pop("manifest_sha256")
    doc["target"]["cpu_features"] = features
    (artifact / "manifest.json").write_text(seal_manifest(doc))


def test_artifact_needing_cpu_features_this_cpu_lacks_is_refused(artifact_copy):
    """An artifact whose machine code needs CPU features (an x86_64-avx512 one on an AVX2
    machine) is refused by name before its library is loaded, not killed by SIGILL; a
    feature the runtime cannot check is refused too. (The ARM case, an rpi5 artifact on a
    Cortex-A72, runs under qemu in test_cross.py.)"""
    from edgecv import _runtime

    lacking = [f for f in _runtime.checkable_cpu_features() if _runtime.cpu_has(f) is False]
    if lacking:
        _with_cpu_features(artifact_copy, ["avx2", lacking[0]])
        with pytest.raises(
            ArtifactError, match=f"needs CPU features {lacking[0]} that this CPU lacks"
        ):
            Predictor(artifact_copy)
    _with_cpu_features(artifact_copy, ["avx512_imaginary"])
    with pytest.raises(ArtifactError, match="avx512_imaginary that this runtime cannot check"):
        Predictor(artifact_copy)
    present = [f for f in _runtime.checkable_cpu_features() if _runtime.cpu_has(f)]
    _with_cpu_features(artifact_copy, present)
    assert Predictor(artifact_copy).run(SAMPLE_IMAGE).top


@pytest.mark.unit
def test_targets_record_the_cpu_features_their_code_needs():
    from edgecv.targets import resolve_target

    def features(name: str) -> list[str]:
        return resolve_target(name, None, "fp32").manifest()["cpu_features"]

    assert features("x86_64") == [] and features("aarch64") == []
    assert {"avx2", "fma"} <= set(features("x86_64-avx2"))
    assert {"avx512f", "avx512_vnni"} <= set(features("x86_64-avx512"))
    assert features("rpi4") == ["asimd"]
    assert {"asimddp", "fphp"} <= set(features("rpi5"))


def test_portable_artifact_records_no_features(small_artifact):
    from edgecv.artifact import read_manifest

    assert read_manifest(small_artifact)["target"]["cpu_features"] == []
