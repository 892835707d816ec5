"""`load_pretrained(path)`: one call from a checkpoint on disk to a model that classifies clips."""
from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from timesformer_jax.convert.hf import hf_key_to_official, is_hf_checkpoint, load_safetensors, read_hf_checkpoint
from timesformer_jax.convert.official import infer_config, state_to_params, unwrap_official_checkpoint
from timesformer_jax.convert.torch_pickle import load_torch_file
from timesformer_jax.model import MODEL_FIELDS, TimeSformer, apply_overrides

FORMATS = (
    "an official TimeSformer checkpoint file (.pyth/.pth/.pt, torch.save'd dict with 'model_state'), "
    "a state-dict .safetensors file, or a Hugging Face Timesformer save_pretrained directory"
)


@dataclasses.dataclass(frozen=True)
class PretrainedTimeSformer:
    """A `TimeSformer` module with its parameters. `m(video)` maps (B, T, H, W, C) float video to logits."""

    module: TimeSformer
    params: dict
    source: str = ""

    @property
    def config(self) -> dict:
        """The model's fields, enough to rebuild the module: `TimeSformer(**m.config)`."""
        return {f: getattr(self.module, f) for f in MODEL_FIELDS}

    @cached_property
    def _forward(self):
        return jax.jit(lambda params, video: self.module.apply({"params": params}, video))

    def __call__(self, video) -> jax.Array:
        video = jnp.asarray(video)
        if not jnp.issubdtype(video.dtype, jnp.floating):
            raise ValueError(f"expected float video (B, T, H, W, C), already normalised; got dtype {video.dtype}")
        self.module.check_video(video.shape)
        return self._forward(self.params, video)


def _read_state(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(official-named state dict, fields the file's own config gives) for any supported format."""
    if path.is_dir():
        if is_hf_checkpoint(path):
            return read_hf_checkpoint(path)
        raise ValueError(f"{path} is a directory but not a Hugging Face Timesformer checkpoint; expected {FORMATS}")
    obj = load_safetensors(path) if path.suffix == ".safetensors" else load_torch_file(path)
    state = unwrap_official_checkpoint(obj)
    if any(k.startswith(("timesformer.", "embeddings.", "encoder.layer.")) for k in state):
        state = {hf_key_to_official(k): v for k, v in state.items()}
    return state, {}


def load_pretrained(path: str | Path, **overrides) -> PretrainedTimeSformer:
    """Load a TimeSformer checkpoint: an official `.pyth`, or a Hugging Face directory.

    The architecture is inferred from the tensors (width, depth, patch, frames, classes, attention type); the
    head count comes from the checkpoint's config where it has one, else 64 dimensions per head. `overrides`
    are `TimeSformer` fields that replace inferred ones, e.g. `num_heads=3` or `dtype=jnp.bfloat16`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; expected {FORMATS}")
    state, file_fields = _read_state(path)
    num_heads = overrides.get("num_heads", file_fields.get("num_heads"))
    config = apply_overrides({**infer_config(state, num_heads), **file_fields}, overrides)
    module = TimeSformer(**config)
    params = state_to_params(state, module)
    return PretrainedTimeSformer(module, jax.tree.map(jnp.asarray, params), source=str(path))
