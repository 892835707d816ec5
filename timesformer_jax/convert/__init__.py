"""Checkpoint readers and name mappings into our parameter tree."""
from timesformer_jax.convert.pretrained import PretrainedTimeSformer, load_pretrained

__all__ = ["PretrainedTimeSformer", "load_pretrained"]
