"""What every Hugging Face `save_pretrained` directory has: `config.json` and weights (`model.safetensors`, its
sharded index, or `pytorch_model.bin`), read with NumPy only. Shared by the ViT and Timesformer readers."""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import numpy as np
from safetensors.numpy import load_file

from timesformer_jax.convert.readers.torch_pickle import load_torch_file
from timesformer_jax.user_files import read_json_object


def read_hf_config(path: Path) -> dict:
    """The `config.json` of a `save_pretrained` directory ({} when there is none); ValueError naming the file
    when it is damaged (not JSON, not an object, a link to nothing)."""
    config = path / "config.json"
    if path.is_dir() and config.is_symlink() and not config.exists():
        raise ValueError(f"{config} is a link to a missing file ({config.readlink()}): the download or Hub cache "
                         "is incomplete; download the model again")
    return read_json_object(config, "a Hugging Face model config") if path.is_dir() and config.is_file() else {}


def read_hf_protocol(path: Path) -> dict | None:
    """What the `preprocessor_config.json` of a `save_pretrained` directory says of the test protocol (crop size,
    mean, std; `timesformer_jax.protocol`), or None when there is none. ValueError naming the file when damaged."""
    from timesformer_jax.protocol import protocol_from_hf_preprocessor

    preprocessor = path / "preprocessor_config.json"
    if not preprocessor.is_file():
        return None
    return protocol_from_hf_preprocessor(read_json_object(preprocessor, "a Hugging Face preprocessor config"),
                                         str(preprocessor))


def config_value(config: dict, path: Path, name: str, check, expected: str, default=None):
    """`config[name]` (or `default` when absent) if `check(value)` holds; else ValueError naming the config file,
    the field, what was expected and what was received."""
    if name not in config:
        return default
    value = config[name]
    if not check(value):
        raise ValueError(f"{path / 'config.json'}: {name} must be {expected}, got {value!r}")
    return value


def backbone_fields(path: Path, config: dict, layer_norm_eps: float) -> dict:
    """The `TimeSformer` fields every HF ViT-like `config.json` gives (head count, LayerNorm epsilon, qkv bias),
    each checked; `layer_norm_eps` is the model family's default."""
    fields = dict(
        num_heads=config_value(config, path, "num_attention_heads", is_positive_int, "a positive integer"),
        layer_norm_eps=config_value(config, path, "layer_norm_eps", is_positive_number, "a positive number",
                                    layer_norm_eps),
        qkv_bias=config_value(config, path, "qkv_bias", lambda v: isinstance(v, bool), "true or false", True),
    )
    return {k: v for k, v in fields.items() if v is not None}


def is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def is_positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


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
        return {k: v for shard in shard_files(index) for k, v in load_safetensors(shard).items()}
    if torch_bin.is_file():
        return load_torch_file(torch_bin)
    raise ValueError(f"{path} has a config.json but no model.safetensors, shard index or pytorch_model.bin")


def shard_files(index: Path) -> list[Path]:
    """The shard files a `model.safetensors.index.json` names, each inside the index's own directory.

    A name is a plain relative path (no `..`, not absolute): the index never reaches outside its checkpoint. It is
    checked as written, not resolved, since a Hub cache snapshot's files are links into the cache's blob store."""
    weight_map = read_json_object(index, "a sharded checkpoint index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index}: expected a non-empty 'weight_map' object (tensor name -> shard file), "
                         f"got {weight_map!r}"[:300])
    shards = []
    for name in sorted(set(map(str, weight_map.values()))):
        parts = PurePosixPath(name.replace("\\", "/"))
        if not name or parts.is_absolute() or ".." in parts.parts or re.match(r"^[A-Za-z]:", name):
            raise ValueError(f"{index}: shard {name!r} is outside the checkpoint directory; an index may only name "
                             "files beside it")
        shards.append(index.parent / parts)
    return shards
