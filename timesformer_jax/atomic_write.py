"""`write_atomically`: the one whole-or-nothing file write (manifests, exported models, saved executables,
feature files): a reader sees the old file or the new one, never a part."""
from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: str | Path, data: bytes) -> None:
    """`path` holds all of `data` or is left as it was: written and synced beside it, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".partial")
    with open(staging, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    staging.replace(path)
