"""Reference TimeSformers built with Hugging Face transformers (PyTorch, CPU), and official-format state dicts.

Every parameter is randomised: the default init zeroes `temporal_fc` and the embeddings, which would hide
mapping bugs. The official names are written from the official model's attribute structure
(facebookresearch/TimeSformer `timesformer/models/vit.py`), walking HF's modules object by object.
"""
from __future__ import annotations

import numpy as np
import torch
from transformers import TimesformerConfig, TimesformerForVideoClassification

# Head dim 16 (48 / 3), not 64, so a loader that guesses the head count instead of reading it fails.
SMALL_CONFIG = dict(
    image_size=32,
    patch_size=8,
    num_channels=3,
    num_frames=4,
    hidden_size=48,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=96,
    num_labels=7,
)


def randomised_hf_model(attention_type: str, seed: int = 0, **config) -> TimesformerForVideoClassification:
    torch.manual_seed(seed)
    model = TimesformerForVideoClassification(
        TimesformerConfig(attention_type=attention_type, **{**SMALL_CONFIG, **config})
    ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn_like(p) * 0.2
            p.copy_(1.0 + noise if "layernorm" in name and name.endswith("weight") else noise)
    return model


def official_state_dict(model: TimesformerForVideoClassification) -> dict[str, torch.Tensor]:
    """The model's weights under the official checkpoint names (`model.` prefix, as in `model_state`)."""
    tf = model.timesformer
    emb = tf.embeddings
    tensors = {
        "cls_token": emb.cls_token,
        "pos_embed": emb.position_embeddings,
        "patch_embed.proj.weight": emb.patch_embeddings.projection.weight,
        "patch_embed.proj.bias": emb.patch_embeddings.projection.bias,
    }
    if hasattr(emb, "time_embeddings"):
        tensors["time_embed"] = emb.time_embeddings
    modules = {"norm": tf.layernorm, "head": model.classifier}
    for i, layer in enumerate(tf.encoder.layer):
        block = {
            "norm1": layer.layernorm_before,
            "attn.qkv": layer.attention.attention.qkv,
            "attn.proj": layer.attention.output.dense,
            "norm2": layer.layernorm_after,
            "mlp.fc1": layer.intermediate.dense,
            "mlp.fc2": layer.output.dense,
        }
        if hasattr(layer, "temporal_attention"):
            block["temporal_norm1"] = layer.temporal_layernorm
            block["temporal_attn.qkv"] = layer.temporal_attention.attention.qkv
            block["temporal_attn.proj"] = layer.temporal_attention.output.dense
            block["temporal_fc"] = layer.temporal_dense
        modules.update({f"blocks.{i}.{name}": m for name, m in block.items()})
    for name, module in modules.items():
        tensors[f"{name}.weight"] = module.weight
        tensors[f"{name}.bias"] = module.bias
    return {f"model.{k}": v.detach().clone() for k, v in tensors.items()}


def to_pixel_values(video: np.ndarray) -> torch.Tensor:
    """(B, T, H, W, C) channels-last -> HF's (B, T, C, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(video.transpose(0, 1, 4, 2, 3)))


@torch.no_grad()
def official_logits(model: TimesformerForVideoClassification, video: np.ndarray) -> np.ndarray:
    """Logits as the official model computes them. For space-only, HF classifies every frame separately; the
    official model averages the per-frame token sequences before the final norm, so we do that here."""
    pixel_values = to_pixel_values(video)
    if model.config.attention_type != "space_only":
        return model(pixel_values).logits.numpy()
    batch, frames = video.shape[:2]
    tf = model.timesformer
    hidden = tf.encoder(tf.embeddings(pixel_values)).last_hidden_state  # (B * T, 1 + N, D)
    hidden = hidden.reshape(batch, frames, *hidden.shape[1:]).mean(1)
    return model.classifier(tf.layernorm(hidden)[:, 0]).numpy()


def relative_error(ours, reference) -> float:
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))
