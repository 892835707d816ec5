"""Inflate an image ViT (or re-target a TimeSformer) state dict into the full state dict of a `TimeSformer`.

Works on official-named tensors in PyTorch layout (`readers/`); `to_flax.state_to_params` then maps the
result onto the module's parameter tree and checks every shape. For each parameter of the target model:

* present in the checkpoint: taken as is (`pos_embed` and `time_embed` resampled when the patch grid or frame
  count differs, see `resample.py`);
* a stage the checkpoint does not have at all (`temporal_*` of divided and axial, `local_*` of L+G, `width_*` of axial):
  `<stage>_norm1` and `<stage>_attn` copied from the block's `norm1` and `attn`, as the official code does for
  the temporal attention, and `<stage>_fc` zero, so each new stage starts as an identity residual and the
  model computes exactly the ViT's function on a clip of identical frames. `temporal_init="official"` instead
  leaves block 0's `_fc` randomly initialised, as the official TimeSformer does (it zeroes blocks 1..N-1 only);
* `time_embed`: zero when the checkpoint has none (the official initialisation);
* `head`: kept when the checkpoint's head has the model's class count and reads the cls features directly;
  re-initialised otherwise (a new class count, or an ImageNet-21k head that sits on a `pre_logits` layer).

Checkpoint tensors that the target does not use are dropped with a reason when they are known (a `pre_logits`
layer, a classifier that does not fit, another scheme's stages); anything else is left in, so that
`state_to_params` reports it as unexpected: a non-ViT checkpoint fails loudly instead of converting partly.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import re
import zlib

import jax
import numpy as np

from timesformer_jax.convert.to_flax import param_key, torch_layout
from timesformer_jax.convert.resample import resample_pos_embed, resample_time_embed
from timesformer_jax.model import TimeSformer
from timesformer_jax.model.attention import dense_init
from timesformer_jax.model.params import abstract_params

TEMPORAL_INITS = ("zero", "official")
_STAGE_PARAM = re.compile(r"blocks\.(\d+)\.([a-z]+)_(norm1|attn|fc)\.(.+)")


@dataclasses.dataclass
class ConversionReport:
    """What happened to every tensor: mapped as is, resampled, initialised fresh, or dropped (with reasons)."""

    source: str = ""  # the checkpoint format read, one of readers.SOURCES
    class_names: list[str] | None = None  # the kept head's class names, when the checkpoint names them
    # the test protocol for the converted model (timesformer_jax.protocol): the official one, with what the
    # checkpoint says of its own (HF preprocessor_config.json) on top
    protocol: dict | None = None
    mapped: list[str] = dataclasses.field(default_factory=list)
    resampled: list[str] = dataclasses.field(default_factory=list)
    initialised: list[str] = dataclasses.field(default_factory=list)
    dropped: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """Counts per category; per-block entries collapsed to one line each (`blocks.*.`, with the count)."""
        lines = [f"{len(self.mapped)} tensors mapped from the checkpoint"]
        for title, items in (
            ("resampled", self.resampled),
            ("initialised (not in the checkpoint)", self.initialised),
            ("dropped", self.dropped),
        ):
            lines.append(f"{len(items)} {title}" + (":" if items else ""))
            collapsed = collections.Counter(re.sub(r"blocks\.\d+\.", "blocks.*.", item) for item in items)
            lines.extend(f"  - {item}" + (f" (x{n})" if n > 1 else "") for item, n in collapsed.items())
        return "\n".join(lines)


def _square_grid(pos_embed: np.ndarray) -> tuple[int, int]:
    num_patches = pos_embed.shape[1] - 1
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"pos_embed {pos_embed.shape} holds {num_patches} patch positions: not a square grid")
    return side, side


def _fresh_linear(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A Linear weight (out, in) drawn as the model draws its dense kernels (truncated normal, std 0.02), from a
    stream of its own per parameter name, so it does not depend on which other tensors were fresh."""
    rng = jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()))
    return np.asarray(dense_init(rng, shape, np.float32))


def _head(state, module: TimeSformer, key: str, expected, seed: int, report: ConversionReport):
    """The classifier tensor `key` for the target: kept, or re-initialised with the reason recorded."""
    source = state.get("head.weight")
    pre_logits = "pre_logits.fc.weight" in state
    fits = source is not None and source.shape[0] == module.num_classes and key in state
    if fits and not pre_logits:
        report.mapped.append(key)
        return state[key]
    if key.endswith("weight"):
        if source is None:
            why = "the checkpoint has no classifier"
        elif pre_logits:
            why = (
                f"the checkpoint's {source.shape[0]}-class head reads a pre_logits layer (ImageNet-21k ViT / HF "
                "pooler) that TimeSformer does not have"
            )
        else:
            why = f"the checkpoint's head has {source.shape[0]} classes, the model {module.num_classes}"
        report.initialised.append(f"head ({module.num_classes} classes): {why}")
        return _fresh_linear(seed, key, expected)
    return np.zeros(expected, np.float32)


def inflate_state(
    state: dict[str, np.ndarray],
    module: TimeSformer,
    *,
    temporal_init: str = "zero",
    resample: str = "bilinear",
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], ConversionReport]:
    """The official-named state dict of `module`, built from checkpoint `state`, and what was done to build it."""
    if temporal_init not in TEMPORAL_INITS:
        raise ValueError(f"unknown temporal_init {temporal_init!r}; expected one of {TEMPORAL_INITS}")
    report = ConversionReport()
    target = {
        tuple(k.key for k in path): leaf.shape
        for path, leaf in jax.tree_util.tree_leaves_with_path(abstract_params(module))
    }
    # A stage the checkpoint has (partly) is not re-derived: its missing tensors are a damaged checkpoint.
    stages_in_checkpoint = {m.group(2) for k in state if (m := _STAGE_PARAM.fullmatch(k))}
    out: dict[str, np.ndarray] = {}
    for path, shape in target.items():
        key, expected = param_key(path), torch_layout(path, shape)
        stage = _STAGE_PARAM.fullmatch(key)
        if stage and stage.group(2) in stages_in_checkpoint:
            stage = None
        if key == "pos_embed" and key in state:
            grid_in, grid_out = _square_grid(state[key]), module.config_grid
            out[key] = resample_pos_embed(state[key], grid_in, grid_out, resample)
            if grid_in != grid_out:
                (hi, wi), (ho, wo) = grid_in, grid_out
                report.resampled.append(f"pos_embed: {hi}x{wi} -> {ho}x{wo} patch grid ({resample})")
            else:
                report.mapped.append(key)
        elif key == "time_embed":
            if key in state:
                frames_in = state[key].shape[1]
                out[key] = resample_time_embed(state[key], module.num_frames, resample)
                if frames_in != module.num_frames:
                    report.resampled.append(f"time_embed: {frames_in} -> {module.num_frames} frames ({resample})")
                else:
                    report.mapped.append(key)
            else:
                out[key] = np.zeros(expected, np.float32)
                report.initialised.append("time_embed: zeros (the checkpoint has no time axis)")
        elif key.startswith("head."):
            out[key] = _head(state, module, key, expected, seed, report)
        elif key in state:
            out[key] = state[key]
            report.mapped.append(key)
        elif stage and stage.group(3) in ("norm1", "attn"):
            block, _, part, leaf = stage.groups()
            origin = f"blocks.{block}.{part}.{leaf}"
            if origin in state:
                out[key] = state[origin]
                report.initialised.append(f"{key}: copied from {origin}")
        elif stage:  # <stage>_fc: the new stage's output projection
            block = int(stage.group(1))
            random_block0 = temporal_init == "official" and block == 0 and key.endswith("weight")
            out[key] = _fresh_linear(seed, key, expected) if random_block0 else np.zeros(expected, np.float32)
            report.initialised.append(f"{key}: {'random (official init)' if random_block0 else 'zeros'}")
        # Anything else stays missing, and state_to_params names it.

    target_keys = set(out)
    for key in sorted(set(state) - target_keys):
        stage = _STAGE_PARAM.fullmatch(key)
        if key.startswith("pre_logits."):
            report.dropped.append(f"{key}: ImageNet-21k representation layer / HF pooler; TimeSformer has none")
        elif key.startswith("head."):  # only reached when the model has no head (kept/replaced heads are in `out`)
            report.dropped.append(f"{key}: the model has no head (num_classes=0)")
        elif key == "time_embed" or (stage and stage.group(3) in ("norm1", "attn", "fc")):
            report.dropped.append(f"{key}: not used by attention_type={module.attention_type!r}")
        else:
            out[key] = state[key]  # unexpected: state_to_params reports it
    return out, report
