"""Named model sizes. Each preset is a dict of `TimeSformer` fields; `create_model` applies overrides on top.

The three paper models share the ViT-B/16 backbone and differ in clip size: `timesformer_base` (8 x 224^2),
`timesformer_hr` (16 x 448^2) and `timesformer_large` (96 x 224^2). `timesformer_tiny` and `timesformer_small`
are ours, for tests and demos on small generated clips.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from timesformer_jax.model.attention import ATTENTION_IMPLS, WEIGHT_INITS
from timesformer_jax.model.schemes import get_scheme
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


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= minimum


def _is_number(value, minimum: float, strictly: bool = False) -> bool:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(value) and (value > minimum if strictly else value >= minimum)


def _is_image_size(value) -> bool:
    if isinstance(value, (tuple, list)):
        return len(value) == 2 and all(_is_int(v, 1) for v in value)
    return _is_int(value, 1)


# What each value-checked field must hold: (check, what a reader is told was expected).
_FIELD_VALUES = {
    "num_classes": (lambda v: _is_int(v, 0), "an integer >= 0 (0: no classifier head)"),
    "image_size": (_is_image_size, "a positive integer or a (height, width) pair of them"),
    **{name: (lambda v: _is_int(v, 1), "a positive integer")
       for name in ("num_frames", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_dim")},
    "splash_min_length": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "layer_norm_eps": (lambda v: _is_number(v, 0.0, strictly=True), "a positive number"),
    **{name: (lambda v: _is_number(v, 0.0) and v < 1, "a number in [0, 1)")
       for name in ("dropout_rate", "attention_dropout_rate", "drop_path_rate")},
    **{name: (lambda v: _is_number(v, 0.0), "a number >= 0")
       for name in ("time_embed_init_std", "stage_fc_init_std")},
    "weight_init": (lambda v: v in WEIGHT_INITS, f"one of {', '.join(map(repr, WEIGHT_INITS))}"),
    "attention_impl": (lambda v: v is None or v in ATTENTION_IMPLS,
                       f"None (chosen per platform) or one of {', '.join(map(repr, ATTENTION_IMPLS))}"),
    **{name: (lambda v: isinstance(v, (bool, np.bool_)), "True or False")
       for name in ("qkv_bias", "resize_embeddings", "remat", "scan_blocks")},
}


# Fields stored under an earlier name (converted checkpoints, training workdirs): old -> current.
RENAMED_FIELDS = {"temporal_fc_init_std": "stage_fc_init_std"}  # it also sets local_fc and width_fc


def upgrade_model_fields(fields: dict) -> dict:
    """`fields` (as stored: a converted checkpoint's or a run's config) with earlier names replaced by the
    current ones (`RENAMED_FIELDS`)."""
    return {RENAMED_FIELDS.get(name, name): value for name, value in fields.items()}


def check_model_fields(fields: dict, source: str | None = None) -> None:
    """Raise ValueError for unknown field names, a value of the wrong type or range (naming the field, what was
    expected and what was received, and `source` when given: the file the fields came from), an unknown attention
    type or remat policy, or a head count that does not divide the width."""
    where = f"{source}: " if source else ""
    unknown = sorted(set(fields) - set(MODEL_FIELDS))
    if unknown:
        renamed = "".join(f"; {name} is now {RENAMED_FIELDS[name]}" for name in unknown if name in RENAMED_FIELDS)
        raise ValueError(f"{where}unknown TimeSformer field(s) {unknown}{renamed}; expected some of "
                         f"{list(MODEL_FIELDS)}")
    for name, value in fields.items():
        if name in _FIELD_VALUES and not _FIELD_VALUES[name][0](value):
            raise ValueError(f"{where}TimeSformer field {name} must be {_FIELD_VALUES[name][1]}, got {value!r}")
    if isinstance(fields.get("hidden_size"), int) and isinstance(fields.get("num_heads"), int):
        if fields["hidden_size"] % fields["num_heads"]:
            raise ValueError(f"{where}num_heads={fields['num_heads']} does not divide hidden_size="
                             f"{fields['hidden_size']} (each head takes an equal share of the width)")
    if "attention_type" in fields:
        try:
            get_scheme(fields["attention_type"])
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}{e}") from None
    if "remat_policy" in fields:
        from timesformer_jax.model.timesformer import remat_policy

        try:
            remat_policy(fields["remat_policy"])
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}{e}") from None


def apply_overrides(fields: dict, overrides: dict) -> dict:
    """`fields` with `overrides` applied; unknown override names and values out of range are an error."""
    check_model_fields(overrides)
    merged = {**fields, **overrides}
    check_model_fields(merged)
    return merged


def preset_config(name: str, **overrides) -> dict:
    """The fields of preset `name` with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return apply_overrides(PRESETS[name], overrides)


def create_model(name: str = "timesformer_base", **overrides) -> TimeSformer:
    """A `TimeSformer` from preset `name`, e.g. `create_model("timesformer_base", attention_type="axial")`."""
    return TimeSformer(**preset_config(name, **overrides))
