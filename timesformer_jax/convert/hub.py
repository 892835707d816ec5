"""Hugging Face Hub model ids (`facebook/timesformer-base-finetuned-k400`) -> a local snapshot directory.

`huggingface_hub.snapshot_download` does the work, so its environment is honoured: `HF_HOME` / `HF_HUB_CACHE`
(where snapshots live), `HF_HUB_OFFLINE=1` (use the cache only) and `HF_TOKEN`. Only the files a checkpoint
reader needs are fetched. A path that exists locally is never taken for a Hub id.
"""
from __future__ import annotations

import re
from pathlib import Path

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
CHECKPOINT_FILES = ["*.json", "*.safetensors", "*.bin", "*.pyth", "*.pth", "*.npz", "*.txt"]


def looks_like_hub_id(name: str | Path) -> bool:
    """`org/name` that is not an existing local path."""
    return not Path(name).exists() and bool(HUB_ID.fullmatch(str(name)))


def hub_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The local directory of `repo_id` at `revision` (default: main), downloaded into the Hub cache unless it is
    there already. FileNotFoundError naming the id, the cache and HF_HUB_OFFLINE when neither works."""
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise ImportError("loading a Hub model id needs huggingface_hub (pip install huggingface_hub)") from e
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=CHECKPOINT_FILES))
    except (LocalEntryNotFoundError, RepositoryNotFoundError, HfHubHTTPError, OSError, ValueError) as e:
        offline = "on" if constants.HF_HUB_OFFLINE else "off"
        raise FileNotFoundError(
            f"cannot load Hugging Face Hub model {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
            + f": not in the cache {constants.HF_HUB_CACHE} and not downloadable (HF_HUB_OFFLINE is {offline}; "
            f"{type(e).__name__}: {e}). Download it where the Hub is reachable (`hf download "
            f"{repo_id}`), point HF_HUB_CACHE at a cache that has it, or pass a local path."
        ) from e
