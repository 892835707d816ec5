"""Files users hand over, as text and as JSON: file names that print whatever bytes they hold, and JSON files
(model configs, checkpoint indexes, run configs) read with one error that names the file and what it should hold,
whatever is wrong with it."""
from __future__ import annotations

import json
import os
from pathlib import Path


def printable(path: str | Path) -> str:
    """`path` as text every terminal, TSV and JSON writer takes: bytes of a file name that are not UTF-8 (which
    Python keeps as surrogate escapes, refused by UTF-8 writers) become `\\xNN` escapes."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")



def read_json_object(path: Path, what: str) -> dict:
    """The JSON object in `path`; ValueError naming the file (and `what` it should hold) when it is unreadable,
    not JSON, or not an object."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {path} ({what}): {type(e).__name__}: {e}") from e
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({what}): {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} should hold a JSON object ({what}), got {type(value).__name__}")
    return value
