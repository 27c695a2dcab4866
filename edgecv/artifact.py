"""The artifact directory ``<model>-<target>-<precision>/``: compiled library, weights,
the ONNX it came from, and one versioned ``manifest.json``.

The manifest's last member, ``manifest_sha256``, is the sha256 of every byte of the
file before the separator that introduces it, so any edit of the manifest is detected;
every other file is listed with its own sha256. The C++ runtime checks both.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError

SCHEMA = "edgecv.artifact"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
LIBRARY = "model.so"
WEIGHTS = "weights.bin"
ONNX = "model.onnx"
_DIGEST_MARKER = ',\n  "manifest_sha256": "'
_ALIGN = 64


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_weights(path: Path, params: Iterable[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Concatenate parameters (64-byte aligned, little endian); returns their manifest entries."""
    entries: list[dict[str, Any]] = []
    offset = 0
    with open(path, "wb") as f:
        for name, array in params:
            array = np.array(array, order="C", copy=False)  # keeps 0-d arrays 0-d
            if array.dtype.byteorder == ">":
                array = array.astype(array.dtype.newbyteorder("<"))
            pad = (-offset) % _ALIGN
            f.write(b"\0" * pad)
            offset += pad
            data = array.tobytes()
            f.write(data)
            entries.append(
                {
                    "name": name,
                    "shape": list(array.shape),
                    "dtype": str(array.dtype),
                    "offset": offset,
                    "nbytes": len(data),
                }
            )
            offset += len(data)
    return entries


def seal_manifest(doc: dict[str, Any]) -> str:
    """Serialise ``doc`` with its own digest as the last member."""
    body = json.dumps(doc, indent=2, ensure_ascii=False)
    assert body.endswith("\n}")
    head = body[: -len("\n}")]
    digest = hashlib.sha256(head.encode()).hexdigest()
    return f'{head}{_DIGEST_MARKER}{digest}"\n}}\n'


def read_manifest(
    artifact_dir: str | os.PathLike[str], verify_files: bool = True
) -> dict[str, Any]:
    """Load and verify a manifest (and by default the files it lists); raises ArtifactError."""
    directory = Path(artifact_dir)
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"no manifest at {path} (is this an edgecv artifact directory?)")
    raw = path.read_bytes()
    at = raw.rfind(_DIGEST_MARKER.encode())
    if at < 0:
        raise ArtifactError(f"{path} has no manifest_sha256 entry")
    recorded = raw[at + len(_DIGEST_MARKER) : at + len(_DIGEST_MARKER) + 64].decode(
        errors="replace"
    )
    if hashlib.sha256(raw[:at]).hexdigest() != recorded:
        raise ArtifactError(
            f"{path} is corrupted or was edited: its content does not match manifest_sha256"
        )
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise ArtifactError(f"{path}: {err}") from None
    if doc.get("schema") != SCHEMA or doc.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: schema {doc.get('schema')!r} v{doc.get('schema_version')} is not supported "
            f"(this edgecv reads {SCHEMA} v{SCHEMA_VERSION})"
        )
    if verify_files:
        for name, digest in doc["sha256"].items():
            file = directory / name
            if "/" in name or not file.is_file():
                raise ArtifactError(f"{file} is missing")
            if sha256_file(file) != digest:
                raise ArtifactError(f"{file} is corrupted: its sha256 does not match the manifest")
    return doc


class ArtifactWriter:
    """Builds an artifact in a sibling staging directory and moves it into place on
    :meth:`commit`, so an interrupted compile never leaves a half-written artifact."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not (self.out_dir / MANIFEST).is_file():
            raise ArtifactError(
                f"{self.out_dir} exists and is not an edgecv artifact; refusing to overwrite it"
            )
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = self.out_dir.with_name(f".{self.out_dir.name}.partial-{os.getpid()}")
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir()

    def path(self, name: str) -> Path:
        return self.staging / name

    def commit(self, doc: dict[str, Any]) -> Path:
        doc = dict(doc)
        doc["sha256"] = {
            p.name: sha256_file(p) for p in sorted(self.staging.iterdir()) if p.name != MANIFEST
        }
        (self.staging / MANIFEST).write_text(seal_manifest(doc))
        if self.out_dir.exists():
            old = self.out_dir.with_name(f".{self.out_dir.name}.old-{os.getpid()}")
            self.out_dir.rename(old)
            shutil.rmtree(old)
        self.staging.rename(self.out_dir)
        return self.out_dir

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self.staging.exists():
            self.abort()
