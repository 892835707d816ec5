"""Checksums of what a checkpoint directory holds, written when it is made and verified before it is read.

    DIR/manifest.json   {"format": ..., "algorithm": "sha256", "files": {relative path: {"bytes": n, "sha256": hex}}}

Orbax 0.12 (and TensorStore under it) store no checksum of array data: a flipped bit restores silently, a
truncated file fails deep inside TensorStore. Both our checkpoint kinds therefore carry this manifest:

* training checkpoints (`train/checkpointing.py`): written from orbax's post-finalization callback, i.e. after
  every array and metadata file is complete and *before* orbax renames the temporary directory to its step
  (the commit). A committed step without a manifest was made by a version without manifests;
* converted checkpoints (`convert/converted_checkpoint.py`): written into the staging directory before it is
  renamed to DIR.

`verify_manifest` re-reads every listed file: its size, then its SHA-256.
Files that appear later (orbax's top-level commit marker) are not listed and not checked.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from timesformer_jax.atomic_write import write_atomically

MANIFEST_FILE = "manifest.json"
FORMAT = "timesformer_jax/manifest-v1"
ALGORITHM = "sha256"


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, ALGORITHM).hexdigest()


def write_manifest(directory: str | Path, subdirectories: Iterable[str] | None = None) -> dict:
    """Digest every file under `directory` (or only under its `subdirectories`) into DIR/manifest.json, written
    whole or not at all. Returns the manifest."""
    directory = Path(directory)
    roots = [directory / s for s in subdirectories] if subdirectories is not None else [directory]
    files = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(directory).as_posix()
            if relative == MANIFEST_FILE:
                continue
            files[relative] = {"bytes": path.stat().st_size, ALGORITHM: file_digest(path)}
    manifest = {"format": FORMAT, "algorithm": ALGORITHM, "files": files}
    write_atomically(directory / MANIFEST_FILE, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def has_manifest(directory: str | Path) -> bool:
    return (Path(directory) / MANIFEST_FILE).is_file()


def verify_manifest(directory: str | Path) -> str | None:
    """None when every file the manifest lists is present with its size and checksum; else what is wrong, in a
    few words naming the first bad file (e.g. "state/d/1a2b: checksum differs"). A missing or unreadable
    manifest is also a problem ("no manifest.json")."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        return f"no {MANIFEST_FILE}"
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        if manifest.get("format") != FORMAT:
            return f"{MANIFEST_FILE} has format {manifest.get('format')!r}, expected {FORMAT!r}"
    except (ValueError, KeyError, TypeError) as e:
        return f"{MANIFEST_FILE} is unreadable ({type(e).__name__})"
    if not files:
        return f"{MANIFEST_FILE} lists no files"
    for relative, expected in files.items():
        file = directory / relative
        if not file.is_file():
            return f"{relative} is missing"
        size = file.stat().st_size
        if size != expected["bytes"]:
            return f"{relative} has {size} bytes, {expected['bytes']} when saved"
        if file_digest(file) != expected[ALGORITHM]:
            return f"{relative}: checksum differs"
    return None
