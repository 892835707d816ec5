"""What a dataset build was made from: every file below its source folder with its size and modification time,
stored as `sources.json` beside the prepared dataset. A later build compares it with the folder as it is now, so a
changed source is rebuilt instead of reused, and a dataset directory never mixes two source folders."""
from __future__ import annotations

import json
import os
from pathlib import Path

from timesformer_jax.user_files import printable

SOURCES_FILE = "sources.json"


def list_sources(root: str | Path) -> dict:
    """{"root": absolute folder, "files": {relative path: [bytes, mtime_ns]}} of every file below `root`; a
    folder that cannot be listed appears as `<folder>/` with [-1, -1], so a change of its permissions shows too."""
    root = Path(root).absolute()
    files: dict[str, list[int]] = {}

    def unreadable(error: OSError) -> None:
        files[_relative(Path(error.filename), root) + "/"] = [-1, -1]

    for folder, _, names in os.walk(root, onerror=unreadable):
        for name in names:
            path = Path(folder) / name
            try:
                stat = path.stat()
                files[_relative(path, root)] = [stat.st_size, stat.st_mtime_ns]
            except OSError:
                files[_relative(path, root)] = [-1, -1]
    return {"root": str(root), "files": dict(sorted(files.items()))}


def _relative(path: Path, root: Path) -> str:
    # JSON keeps names that are not UTF-8 as escaped surrogates, which read back as the same string.
    return path.relative_to(root).as_posix()


def write_sources(dataset_dir: str | Path, listing: dict) -> None:
    (Path(dataset_dir) / SOURCES_FILE).write_text(json.dumps(listing, indent=0) + "\n")


def read_sources(dataset_dir: str | Path) -> dict | None:
    """The listing a prepared dataset was built from; None when it has none (built before listings were kept)
    or it cannot be read."""
    path = Path(dataset_dir) / SOURCES_FILE
    try:
        listing = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(listing, dict) or not isinstance(listing.get("files"), dict):
        return None
    return listing


def describe_changes(built: dict, now: dict, examples: int = 3) -> str | None:
    """How the source folder changed between two listings of the same root, for a user; None when unchanged."""
    old, new = built["files"], now["files"]
    parts = []
    for what, names in (("added", sorted(set(new) - set(old))), ("removed", sorted(set(old) - set(new))),
                        ("changed", sorted(n for n in set(old) & set(new) if list(old[n]) != list(new[n])))):
        if names:
            shown = ", ".join(printable(n) for n in names[:examples]) + (", ..." if len(names) > examples else "")
            parts.append(f"{len(names)} file(s) {what} ({shown})")
    return "; ".join(parts) or None
