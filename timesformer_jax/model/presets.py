"""Named model sizes. Each preset is a dict of `TimeSformer` fields; `create_model` applies overrides on top.

The three paper models share the ViT-B/16 backbone and differ in clip size: `timesformer_base` (8 x 224^2),
`timesformer_hr` (16 x 448^2) and `timesformer_large` (96 x 224^2). `timesformer_tiny` and `timesformer_small`
are ours, for tests and demos on small generated clips.
"""
from __future__ import annotations

import dataclasses

from timesformer_jax.model.attention import get_scheme
from timesformer_jax.model.timesformer import TimeSformer

_VIT_B16 = dict(patch_size=16, hidden_size=768, depth=12, num_heads=12, mlp_dim=3072)

PRESETS: dict[str, dict] = {
    "timesformer_base": dict(_VIT_B16, image_size=224, num_frames=8, num_classes=400),
    "timesformer_hr": dict(_VIT_B16, image_size=448, num_frames=16, num_classes=400),
    "timesformer_large": dict(_VIT_B16, image_size=224, num_frames=96, num_classes=400),
    "timesformer_small": dict(
        patch_size=8, hidden_size=192, depth=6, num_heads=3, mlp_dim=768, image_size=64, num_frames=8, num_classes=10
    ),
    "timesformer_tiny": dict(
        patch_size=8, hidden_size=64, depth=2, num_heads=2, mlp_dim=128, image_size=32, num_frames=4, num_classes=10
    ),
}

MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(TimeSformer) if f.name not in ("parent", "name"))


def check_model_fields(fields: dict) -> None:
    """Raise ValueError for unknown field names or an unknown attention type."""
    unknown = sorted(set(fields) - set(MODEL_FIELDS))
    if unknown:
        raise ValueError(f"unknown TimeSformer field(s) {unknown}; expected some of {list(MODEL_FIELDS)}")
    if "attention_type" in fields:
        get_scheme(fields["attention_type"])
    if "remat_policy" in fields:
        from timesformer_jax.model.timesformer import remat_policy

        remat_policy(fields["remat_policy"])


def apply_overrides(fields: dict, overrides: dict) -> dict:
    """`fields` with `overrides` applied; unknown override names are an error."""
    check_model_fields(overrides)
    return {**fields, **overrides}


def preset_config(name: str, **overrides) -> dict:
    """The fields of preset `name` with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return apply_overrides(PRESETS[name], overrides)


def create_model(name: str = "timesformer_base", **overrides) -> TimeSformer:
    """A `TimeSformer` from preset `name`, e.g. `create_model("timesformer_base", attention_type="axial")`."""
    return TimeSformer(**preset_config(name, **overrides))
