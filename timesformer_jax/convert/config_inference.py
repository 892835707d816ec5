"""The `TimeSformer` fields of a conversion's target: the architecture read off a canonical state dict's tensors,
the rest from the checkpoint's own config, the caller's overrides and the preset.

The architecture (width, depth, patch size, MLP size, qkv bias, attention scheme) is read from the tensors. The
head count is in no tensor: it comes from `num_heads=`, else the checkpoint's config (HF), else the preset when
the preset has the checkpoint's width, else the ViT convention of 64 dimensions per head. What the video model
adds -- frames, image size, classes, attention scheme -- comes from the overrides, else from the checkpoint when
it is already a TimeSformer, else from the preset.
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import numpy as np

from timesformer_jax.convert.readers import SourceCheckpoint
from timesformer_jax.model import TimeSformer, apply_overrides, preset_config
from timesformer_jax.model.schemes import scheme_of_parameters

VIT_HEAD_DIM = 64  # ViT-B (768 = 12 x 64) and ViT-L (1024 = 16 x 64)
_ARCHITECTURE = ("hidden_size", "depth", "patch_size", "in_channels", "mlp_dim", "qkv_bias")
_VIDEO = ("attention_type", "num_frames", "image_size", "num_classes")
_STAGE_ATTENTION = re.compile(r"blocks\.0\.([a-z]+_)attn\.qkv\.weight")


def infer_config(state: Mapping[str, np.ndarray], num_heads: int | None = None) -> dict:
    """TimeSformer fields implied by the tensors of an official-named state dict.

    The head count is in no tensor: `num_heads` if given, else the ViT convention of 64 dimensions per head.
    """
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight"):
        if key not in state:
            raise ValueError(f"not a ViT or TimeSformer checkpoint: no '{key}' among keys {sorted(state)[:12]} ...")
    width = state["cls_token"].shape[-1]
    _, in_ch, patch, patch_w = state["patch_embed.proj.weight"].shape
    if patch != patch_w:
        raise ValueError(f"patch_embed.proj.weight has a {patch}x{patch_w} patch; only square patches are supported")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    if not blocks:
        raise ValueError("not a ViT or TimeSformer checkpoint: no 'blocks.N.*' tensors")
    num_patches = state["pos_embed"].shape[1] - 1
    grid = math.isqrt(num_patches)
    if grid * grid != num_patches:
        raise ValueError(
            f"pos_embed has {num_patches} patch positions, not a square grid; pass image_size=(H, W) explicitly"
        )
    if num_heads is None:
        if width % VIT_HEAD_DIM:
            raise ValueError(
                f"cannot infer the head count: width {width} is not a multiple of {VIT_HEAD_DIM} (the ViT head "
                "size) and the checkpoint holds no config; pass num_heads=... (`timesformer convert --num_heads`)"
            )
        num_heads = width // VIT_HEAD_DIM
    stage_prefixes = {m.group(1) for k in state if (m := _STAGE_ATTENTION.fullmatch(k))}
    attention_type = scheme_of_parameters(stage_prefixes, has_time_embed="time_embed" in state)
    config = dict(
        attention_type=attention_type,
        hidden_size=width,
        patch_size=patch,
        in_channels=in_ch,
        depth=max(blocks) + 1,
        num_heads=num_heads,
        mlp_dim=state["blocks.0.mlp.fc1.weight"].shape[0] if "blocks.0.mlp.fc1.weight" in state else 4 * width,
        image_size=grid * patch,
        num_classes=state["head.weight"].shape[0] if "head.weight" in state else 0,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
    )
    if "time_embed" in state:
        config["num_frames"] = state["time_embed"].shape[1]
    return config


def target_fields(checkpoint: SourceCheckpoint, preset: str = "timesformer_base", **overrides) -> dict:
    """The `TimeSformer` fields of the converted model (see the module docstring for where each comes from)."""
    defaults = preset_config(preset)
    width = checkpoint.state["cls_token"].shape[-1] if "cls_token" in checkpoint.state else None
    num_heads = overrides.get("num_heads", checkpoint.fields.get("num_heads"))
    if num_heads is None and defaults["hidden_size"] == width:
        num_heads = defaults["num_heads"]
    found = infer_config(checkpoint.state, num_heads)
    for name in _ARCHITECTURE:
        if name in overrides and overrides[name] != found[name]:
            raise ValueError(
                f"{name}={overrides[name]!r} was asked for, but the checkpoint's tensors have {name}={found[name]!r}; "
                "the architecture comes from the checkpoint (drop the override or pick a matching checkpoint)"
            )
    fields = {"attention_type": TimeSformer.attention_type}  # presets name sizes, not schemes
    fields.update({k: v for k, v in defaults.items() if k not in _ARCHITECTURE + ("num_heads",)})
    fields.update({k: found[k] for k in _ARCHITECTURE + ("num_heads",)})
    fields["layer_norm_eps"] = checkpoint.fields.get("layer_norm_eps", 1e-6)
    if checkpoint.is_video:
        fields.update({k: found[k] for k in _VIDEO if k in found})
        fields.update({k: checkpoint.fields[k] for k in ("attention_type", "num_frames") if k in checkpoint.fields})
    fields = apply_overrides(fields, overrides)
    image_size = fields["image_size"]
    sizes = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if any(s % fields["patch_size"] or s <= 0 for s in sizes):
        raise ValueError(f"image_size {image_size} is not a positive multiple of the patch size {fields['patch_size']}")
    if fields["hidden_size"] % fields["num_heads"]:
        raise ValueError(f"num_heads={fields['num_heads']} does not divide the width {fields['hidden_size']}")
    return fields
