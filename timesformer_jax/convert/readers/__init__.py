"""Every checkpoint format we read, reduced to one thing: a state dict under the official TimeSformer names.

The official TimeSformer kept timm's ViT names (`patch_embed.proj`, `blocks.N.attn.qkv`, `norm`, `head`) and added
its temporal ones, so an ImageNet ViT and a TimeSformer checkpoint land in the same namespace, in PyTorch layout:

    npz       Google ViT .npz (original, AugReg, big_vision)            google_npz.read_google_npz
    timm      timm ViT state dict (.pth / .bin / .safetensors)          unchanged names
    hf        Hugging Face ViT or Timesformer save_pretrained directory hf_vit / hf_timesformer
    official  official TimeSformer .pyth (or a state dict of one)       official.unwrap_official_checkpoint
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from timesformer_jax.convert.readers.google_npz import read_google_npz
from timesformer_jax.convert.readers.hf_files import class_names_of, load_safetensors, read_hf_config, read_hf_protocol
from timesformer_jax.convert.readers.hf_timesformer import hf_key_to_official, read_hf_checkpoint
from timesformer_jax.convert.readers.hf_vit import read_hf_vit_checkpoint
from timesformer_jax.convert.readers.official import unwrap_official_checkpoint
from timesformer_jax.convert.readers.torch_pickle import load_torch_file
from timesformer_jax.model.schemes import stage_parameter_prefixes

SOURCES = ("npz", "timm", "hf", "official")


@dataclasses.dataclass(frozen=True)
class SourceCheckpoint:
    """A checkpoint read from disk.

    state: official/timm-named tensors in PyTorch layout.
    fields: `TimeSformer` fields that the file's own config gives (HF: head count, LayerNorm epsilon, ...).
    is_video: a TimeSformer (temporal parameters, an official `model_state` wrapper, an HF Timesformer, or
        declared `official`): frames, image size and classes default to its own; otherwise an image ViT.
    class_names: the names of the head's classes when the file's config gives them (HF `id2label`).
    protocol: what the file says of its test protocol (HF Timesformer `preprocessor_config.json`: crop, mean, std).
    """

    state: dict[str, np.ndarray]
    fields: dict
    is_video: bool
    source: str
    path: Path
    class_names: list[str] | None = None
    protocol: dict | None = None


def _has_video_tensors(state: dict) -> bool:
    """A time embedding, or the parameters of any registered scheme's own attention stages."""
    stage_keys = {f"blocks.0.{prefix}attn.qkv.weight" for prefix in stage_parameter_prefixes()}
    return "time_embed" in state or any(key in state for key in stage_keys)


def _read_state_dict_file(path: Path) -> tuple[dict[str, np.ndarray], bool]:
    """A single-file state dict (torch.save'd or .safetensors), unwrapped from training-checkpoint dicts, and
    whether it came wrapped as an official TimeSformer training checkpoint (`model_state`)."""
    obj = load_safetensors(path) if path.suffix == ".safetensors" else load_torch_file(path)
    official = isinstance(obj, dict) and "model_state" in obj
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):  # timm/DeiT training files
        obj = obj["model"]
    state = unwrap_official_checkpoint(obj)
    if any(k.startswith(("timesformer.", "embeddings.", "encoder.layer.")) for k in state):
        state = {hf_key_to_official(k): v for k, v in state.items()}
    return state, official


def read_source(path: str | Path, source: str | None = None) -> SourceCheckpoint:
    """Read a checkpoint of format `source` (one of SOURCES). None detects it: a directory is `hf`, a `.npz` is
    `npz`, and a state-dict file is `official` when it holds temporal parameters, else `timm`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if source is not None and source not in SOURCES:
        raise ValueError(f"unknown source format {source!r}; expected one of {SOURCES}")
    fields: dict = {}
    class_names = protocol = None
    is_video = source == "official"
    if path.is_dir():
        if source not in (None, "hf"):
            raise ValueError(f"source {source!r} expects a file, but {path} is a directory (an 'hf' checkpoint?)")
        source = "hf"
        config = read_hf_config(path)
        class_names = class_names_of(config)
        if config.get("model_type") == "vit":
            state, fields = read_hf_vit_checkpoint(path, config)
        elif config.get("model_type") == "timesformer":
            state, fields = read_hf_checkpoint(path, config)
            protocol = read_hf_protocol(path)
            is_video = True
        else:
            raise ValueError(
                f"{path} is not a Hugging Face ViT or Timesformer checkpoint: expected a directory with a "
                "config.json whose model_type is 'vit' or 'timesformer', next to its model.safetensors"
            )
    elif source == "hf":
        raise ValueError(f"source 'hf' expects a save_pretrained directory, but {path} is a file")
    elif source == "npz" or (source is None and path.suffix == ".npz"):
        source, state = "npz", read_google_npz(path)
    else:
        state, official_wrapper = _read_state_dict_file(path)
        is_video = is_video or official_wrapper
    is_video = is_video or _has_video_tensors(state)
    source = source or ("official" if is_video else "timm")
    return SourceCheckpoint(state=state, fields=fields, is_video=is_video, source=source, path=path,
                            class_names=class_names, protocol=protocol)
