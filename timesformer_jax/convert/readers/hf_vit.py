"""Hugging Face `ViTModel` / `ViTForImageClassification` directories -> a timm-named state dict.

`save_pretrained` writes the classic names (`vit.encoder.layer.N.attention.attention.query.weight`, ...);
transformers 5 uses other module names in memory (`layers.N.attention.q_proj`), and state dicts saved from it
directly carry those, so both spellings are read. Separate q/k/v Linear layers are concatenated into the
single `qkv` layer of timm and TimeSformer. `ViTModel`'s pooler (dense + tanh on the cls token) has no
TimeSformer counterpart and becomes `pre_logits.fc.*`, which the conversion drops with a message.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from timesformer_jax.convert.readers.hf_files import backbone_fields, read_hf_weights, require_exact_gelu

_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
    "pooler.dense.weight": "pre_logits.fc.weight",
    "pooler.dense.bias": "pre_logits.fc.bias",
}
_LAYER = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.attention.query": "attn.q",
    "attention.attention.key": "attn.k",
    "attention.attention.value": "attn.v",
    "attention.q_proj": "attn.q",
    "attention.k_proj": "attn.k",
    "attention.v_proj": "attn.v",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "mlp.fc1": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc2": "mlp.fc2",
}


def hf_vit_state_to_timm(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF ViT tensor names -> timm names, q/k/v fused into `attn.qkv`. Unknown names pass through unchanged."""
    state: dict[str, np.ndarray] = {}
    for key, value in weights.items():
        key = key.removeprefix("vit.")
        m = re.fullmatch(r"(?:encoder\.layer|layers)\.(\d+)\.(.+)\.(weight|bias)", key)
        if key in _TOP:
            state[_TOP[key]] = value
        elif m and m.group(2) in _LAYER:
            state[f"blocks.{m.group(1)}.{_LAYER[m.group(2)]}.{m.group(3)}"] = value
        else:
            state[key] = value
    for m in [m for k in list(state) if (m := re.fullmatch(r"(blocks\.\d+\.attn)\.q\.(weight|bias)", k))]:
        stem, leaf = m.groups()
        parts = [state.pop(f"{stem}.{n}.{leaf}", None) for n in ("q", "k", "v")]
        if any(p is None for p in parts):
            raise ValueError(f"HF ViT checkpoint has a query {leaf} in {stem} but not all of key/value")
        state[f"{stem}.qkv.{leaf}"] = np.concatenate(parts, axis=0)
    return state


def read_hf_vit_checkpoint(path: Path, config: dict) -> tuple[dict[str, np.ndarray], dict]:
    """(timm-named state dict, TimeSformer fields from `config`) for an HF ViT `save_pretrained` directory."""
    require_exact_gelu(path, config)
    fields = backbone_fields(path, config, layer_norm_eps=1e-12)
    return hf_vit_state_to_timm(read_hf_weights(path)), fields
