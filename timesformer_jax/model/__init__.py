"""The TimeSformer model: attention schemes, blocks, presets."""
from timesformer_jax.model.schemes import (ATTENTION_TYPES, REFERENCE_SCHEMES, SCHEMES, Grouping, Scheme, Stage, get_scheme,
                                           register_scheme, unregister_scheme)
from timesformer_jax.model.presets import (
    MODEL_FIELDS,
    PRESETS,
    apply_overrides,
    check_model_fields,
    create_model,
    preset_config,
)
from timesformer_jax.model.params import TreeMismatch, abstract_params, abstract_variables
from timesformer_jax.model.timesformer import Block, TimeSformer

__all__ = [
    "ATTENTION_TYPES",
    "SCHEMES",
    "REFERENCE_SCHEMES",
    "Grouping",
    "Scheme",
    "Stage",
    "get_scheme",
    "register_scheme",
    "unregister_scheme",
    "TreeMismatch",
    "abstract_params",
    "abstract_variables",
    "MODEL_FIELDS",
    "PRESETS",
    "apply_overrides",
    "check_model_fields",
    "create_model",
    "preset_config",
    "Block",
    "TimeSformer",
]
