"""Checkpoint readers, ViT -> TimeSformer inflation, and our converted-checkpoint format."""
from timesformer_jax.convert.conversion import convert_checkpoint, convert_to_directory
from timesformer_jax.convert.pretrained import PretrainedTimeSformer, load_pretrained

__all__ = ["PretrainedTimeSformer", "convert_checkpoint", "convert_to_directory", "load_pretrained"]
