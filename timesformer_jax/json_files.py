"""Reading the JSON files users and tools hand over (model configs, checkpoint indexes, run configs): one error
that names the file and what it should hold, whatever is wrong with it."""
from __future__ import annotations

import json
from pathlib import Path


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
