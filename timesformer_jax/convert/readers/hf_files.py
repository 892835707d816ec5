"""What every Hugging Face `save_pretrained` directory has: `config.json` and weights (`model.safetensors`, its
sharded index, or `pytorch_model.bin`), read with NumPy only. Shared by the ViT and Timesformer readers."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from timesformer_jax.convert.readers.torch_pickle import load_torch_file


def read_hf_config(path: Path) -> dict:
    """The `config.json` of a `save_pretrained` directory ({} when there is none)."""
    config = path / "config.json"
    return json.loads(config.read_text()) if path.is_dir() and config.is_file() else {}


def class_names_of(config: dict) -> list[str] | None:
    """The class names of a `config.json`'s `id2label`, in index order; None when it has none, or only the
    placeholders `LABEL_0`, `LABEL_1`, ... that transformers writes for a model nobody named."""
    id2label = config.get("id2label") or {}
    try:
        names = [id2label[key] for key in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return None
    if not names or sorted(int(k) for k in id2label) != list(range(len(names))):
        return None
    if all(re.fullmatch(r"LABEL_\d+", str(name)) for name in names):
        return None
    return [str(name) for name in names]


def require_exact_gelu(path: Path, config: dict) -> None:
    """TimeSformer and ViT blocks use exact GELU; any other activation would silently compute something else."""
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{path}: hidden_act={config['hidden_act']!r} is not supported; TimeSformer uses exact 'gelu'")


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of one `.safetensors` file; ValueError for a truncated or corrupt file."""
    try:
        return dict(load_file(str(path)))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise ValueError(f"cannot read safetensors file {path}: {type(e).__name__}: {e}") from e


def read_hf_weights(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a `save_pretrained` directory, by their HF names."""
    single, index, torch_bin = path / "model.safetensors", path / "model.safetensors.index.json", path / "pytorch_model.bin"
    if single.is_file():
        return load_safetensors(single)
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_safetensors(path / shard).items()}
    if torch_bin.is_file():
        return load_torch_file(torch_bin)
    raise ValueError(f"{path} has a config.json but no model.safetensors, shard index or pytorch_model.bin")
