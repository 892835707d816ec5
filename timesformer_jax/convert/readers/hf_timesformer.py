"""Hugging Face `TimesformerModel` / `TimesformerForVideoClassification` checkpoints (`save_pretrained` dirs).

Weights are read from `model.safetensors` (or its sharded index, or a `pytorch_model.bin`) with NumPy, renamed
to the official TimeSformer names (the canonical state dict of `readers/__init__.py`). `config.json` supplies what no
tensor holds: the head count, LayerNorm epsilon and the attention type.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from timesformer_jax.convert.readers.hf_files import (
    backbone_fields,
    config_value,
    is_positive_int,
    read_hf_weights,
    require_exact_gelu,
)
from timesformer_jax.model.schemes import SCHEMES

# HF module path inside a layer -> official module path inside a block.
_LAYER_NAMES = {
    "layernorm_before": "norm1",
    "attention.attention.qkv": "attn.qkv",
    "attention.output.dense": "attn.proj",
    "temporal_layernorm": "temporal_norm1",
    "temporal_attention.attention.qkv": "temporal_attn.qkv",
    "temporal_attention.output.dense": "temporal_attn.proj",
    "temporal_dense": "temporal_fc",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
_TOP_NAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.time_embeddings": "time_embed",
}
_TOP_PREFIXES = {
    "embeddings.patch_embeddings.projection.": "patch_embed.proj.",
    "layernorm.": "norm.",
    "classifier.": "head.",
}


def hf_key_to_official(key: str) -> str:
    """E.g. 'timesformer.encoder.layer.3.temporal_dense.weight' -> 'blocks.3.temporal_fc.weight'.
    Keys with no official counterpart are returned unchanged (and reported as unexpected later)."""
    key = key.removeprefix("timesformer.")
    if key in _TOP_NAMES:
        return _TOP_NAMES[key]
    for prefix, official in _TOP_PREFIXES.items():
        if key.startswith(prefix):
            return official + key[len(prefix) :]
    m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", key)
    if m and m.group(2) in _LAYER_NAMES:
        return f"blocks.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}.{m.group(3)}"
    return key


def read_hf_checkpoint(path: Path, config: dict) -> tuple[dict[str, np.ndarray], dict]:
    """(official-named state dict, TimeSformer fields from `config`) for an HF Timesformer directory."""
    require_exact_gelu(path, config)
    fields = backbone_fields(path, config, layer_norm_eps=1e-6)
    fields["attention_type"] = config_value(config, path, "attention_type", lambda v: isinstance(v, str) and v in SCHEMES,
                                            f"one of {list(SCHEMES)}", "divided_space_time")
    if "num_frames" in config:
        fields["num_frames"] = config_value(config, path, "num_frames", is_positive_int, "a positive integer")
    state = {hf_key_to_official(k): v for k, v in read_hf_weights(path).items()}
    return state, fields
