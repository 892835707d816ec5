"""Model config: `--config configs/model.py:<preset>[,<attention_type>]`.

Returns the preset's `TimeSformer` fields as a ConfigDict, so any field can be overridden from the command line
(`--config.num_frames=16`, `--config.attention_type=axial`). Training configs (a later issue) nest this as
`config.model`.
"""
import ml_collections

from timesformer_jax.model import PRESETS


def get_config(arg: str = "timesformer_base") -> ml_collections.ConfigDict:
    preset, _, attention_type = arg.partition(",")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    config = ml_collections.ConfigDict(dict(PRESETS[preset], attention_type=attention_type or "divided_space_time"))
    config.dtype = "float32"  # compute dtype: float32 or bfloat16; parameters stay float32
    return config
