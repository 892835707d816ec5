"""The TimeSformer model: attention schemes, blocks, presets."""
from timesformer_jax.model.attention import ATTENTION_TYPES, SCHEMES, TOKENS_ATTENDED
from timesformer_jax.model.presets import (
    MODEL_FIELDS,
    PRESETS,
    apply_overrides,
    check_model_fields,
    create_model,
    preset_config,
)
from timesformer_jax.model.timesformer import Block, TimeSformer

__all__ = [
    "ATTENTION_TYPES",
    "SCHEMES",
    "TOKENS_ATTENDED",
    "MODEL_FIELDS",
    "PRESETS",
    "apply_overrides",
    "check_model_fields",
    "create_model",
    "preset_config",
    "Block",
    "TimeSformer",
]
