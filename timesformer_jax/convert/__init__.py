"""Checkpoint readers, ViT -> TimeSformer inflation, and the converted-checkpoint format. The one-call loader of
any checkpoint (converted or trained) is `timesformer_jax.load_pretrained`, above this package."""
from timesformer_jax.convert.conversion import convert_checkpoint, convert_to_directory

__all__ = ["convert_checkpoint", "convert_to_directory"]
