"""`load_pretrained(path)`: one call from a checkpoint on disk to a model that classifies clips.

The front door above both ways a checkpoint is made: conversion (`convert/`: official, HF, timm, npz, converted
directories) and training (`train/workdir.py`: a training workdir's parameters).
"""
from __future__ import annotations

import dataclasses
import logging
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp

from timesformer_jax.convert.conversion import convert_checkpoint
from timesformer_jax.convert.converted_checkpoint import is_converted_checkpoint, load_converted
from timesformer_jax.convert.hub import hub_snapshot, looks_like_hub_id
from timesformer_jax.model import MODEL_FIELDS, TimeSformer, apply_overrides
from timesformer_jax.model.block_layout import to_layout
from timesformer_jax.model.params import TreeMismatch, abstract_params, flat_shapes
from timesformer_jax.protocol import check_protocol
from timesformer_jax.train.workdir import is_training_workdir, read_training_checkpoint

logger = logging.getLogger(__name__)

FORMATS = (
    "a directory written by `timesformer convert`, an official TimeSformer checkpoint file (.pyth/.pth/.pt), a timm "
    "ViT state dict (.pth/.bin/.safetensors), a Google ViT .npz, or a Hugging Face Timesformer/ViT directory"
)


@dataclasses.dataclass(frozen=True)
class PretrainedTimeSformer:
    """A `TimeSformer` module with its parameters. `m(video)` maps (B, T, H, W, C) float video to logits."""

    module: TimeSformer
    params: dict
    source: str = ""
    class_names: tuple[str, ...] | None = None  # the head's class names, when the checkpoint names them
    # the test protocol the checkpoint records (timesformer_jax.protocol.PROTOCOL_KEYS); None: the official one
    protocol: dict | None = None

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


def _stored_model(path: Path, fields: dict, params, class_names, overrides: dict, remedy: str,
                  protocol: dict | None = None) -> PretrainedTimeSformer:
    """A model whose parameters were stored for `fields` (a converted directory, a training workdir), with
    `overrides` applied: they may change run-time knobs, not parameter shapes (`remedy` says what to do instead).
    `class_names` are kept when they name every class of the head; `protocol` (the stored test protocol) is
    checked."""
    module = TimeSformer(**apply_overrides(fields, overrides))
    params = to_layout(params, module.scan_blocks)
    TreeMismatch.compare(flat_shapes(params), flat_shapes(abstract_params(module))).raise_if_any(
        f"{path} does not fit TimeSformer({', '.join(f'{k}={v!r}' for k, v in overrides.items())}): overrides "
        f"that change parameter shapes {remedy}",
    )
    names = tuple(class_names) if class_names and len(class_names) == module.num_classes else None
    if protocol is not None:
        protocol = check_protocol(protocol, str(path))
    return PretrainedTimeSformer(module, jax.tree.map(jnp.asarray, params), source=str(path), class_names=names,
                                 protocol=protocol)


def load_pretrained(path: str | Path, revision: str | None = None, **overrides) -> PretrainedTimeSformer:
    """Load a checkpoint as a ready-to-run TimeSformer.

    `path`: a directory written by `timesformer convert` (our orbax format), a `timesformer train` workdir (its latest
    checkpoint, with the dataset's class names), or any checkpoint `timesformer convert` reads: an
    official TimeSformer `.pyth`, a Hugging Face Timesformer or ViT directory, a timm ViT state dict or a
    Google ViT `.npz` (converted on the fly with the default options; see `convert_checkpoint`); or a Hugging
    Face Hub model id (`facebook/timesformer-base-finetuned-k400`, at `revision`), fetched into / read from the
    Hub cache (`HF_HUB_CACHE`, `HF_HUB_OFFLINE`). A local path always wins over a Hub id.
    `overrides`: `TimeSformer` fields replacing the stored/inferred ones, e.g. `num_heads=3`,
    `dtype=jnp.bfloat16`, or for image checkpoints `num_frames=8, num_classes=400`.
    """
    if looks_like_hub_id(path):
        path = hub_snapshot(str(path), revision)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; expected {FORMATS}, or a Hugging Face Hub id org/name")
    if is_converted_checkpoint(path):
        fields, params, conversion = load_converted(path)
        protocol = conversion.get("protocol", conversion.get("report", {}).get("protocol"))
        return _stored_model(path, fields, params, conversion.get("report", {}).get("class_names"), overrides,
                             "need a new conversion (`timesformer convert`)", protocol)
    if is_training_workdir(path):
        fields, params, names, protocol = read_training_checkpoint(path)
        return _stored_model(path, fields, params, names, overrides, "do not apply to a trained model", protocol)
    module, params, report = convert_checkpoint(path, **overrides)
    if report.initialised or report.dropped or report.resampled:
        logger.info("converted %s on load:\n%s", path, report.summary())
    return PretrainedTimeSformer(module, jax.tree.map(jnp.asarray, params), source=str(path),
                                 class_names=tuple(report.class_names) if report.class_names else None,
                                 protocol=report.protocol)
