"""timesformer_jax: TimeSformer video transformers in JAX/Flax."""
from timesformer_jax.convert import convert_checkpoint
from timesformer_jax.model import ATTENTION_TYPES, PRESETS, TimeSformer, create_model
from timesformer_jax.pretrained import PretrainedTimeSformer, load_pretrained

__version__ = "0.1.0"
__all__ = [
    "ATTENTION_TYPES",
    "PRESETS",
    "PretrainedTimeSformer",
    "TimeSformer",
    "convert_checkpoint",
    "create_model",
    "load_pretrained",
]
