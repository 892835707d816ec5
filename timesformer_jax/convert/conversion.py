"""From any supported checkpoint to the parameters of a `TimeSformer` of the requested scheme, frames, size and classes.

The architecture (width, depth, patch size, MLP size, qkv bias) is read from the checkpoint's tensors. The head
count is in no tensor: it comes from `num_heads=`, else the checkpoint's config (HF), else the preset when the
preset has the checkpoint's width, else the ViT convention of 64 dimensions per head. What the video model
adds -- frames, image size, classes, attention scheme -- comes from the overrides, else from the checkpoint when
it is already a TimeSformer, else from the preset.
"""
from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import Callable

from timesformer_jax.convert.converted_checkpoint import ARCHITECTURE_FIELDS, save_converted
from timesformer_jax.convert.inflate import ConversionReport, inflate_state
from timesformer_jax.convert.official import infer_config, state_to_params
from timesformer_jax.convert.sources import SourceCheckpoint, read_source
from timesformer_jax.model import TimeSformer, apply_overrides, preset_config

_ARCHITECTURE = ("hidden_size", "depth", "patch_size", "in_channels", "mlp_dim", "qkv_bias")
_VIDEO = ("attention_type", "num_frames", "image_size", "num_classes")
_CONVERSION_OPTIONS = ("preset", "temporal_init", "resample", "seed")  # convert_checkpoint's non-field keywords


def target_fields(checkpoint: SourceCheckpoint, preset: str = "timesformer_base", **overrides) -> dict:
    """The `TimeSformer` fields of the converted model (see the module docstring for where each comes from)."""
    defaults = preset_config(preset)
    width = checkpoint.state["cls_token"].shape[-1] if "cls_token" in checkpoint.state else None
    num_heads = overrides.get("num_heads", checkpoint.fields.get("num_heads"))
    if num_heads is None and defaults["hidden_size"] == width:
        num_heads = defaults["num_heads"]
    found = infer_config(checkpoint.state, num_heads)
    for name in _ARCHITECTURE:
        if name in overrides and overrides[name] != found[name]:
            raise ValueError(
                f"{name}={overrides[name]!r} was asked for, but the checkpoint's tensors have {name}={found[name]!r}; "
                "the architecture comes from the checkpoint (drop the override or pick a matching checkpoint)"
            )
    fields = {"attention_type": TimeSformer.attention_type}  # presets name sizes, not schemes
    fields.update({k: v for k, v in defaults.items() if k not in _ARCHITECTURE + ("num_heads",)})
    fields.update({k: found[k] for k in _ARCHITECTURE + ("num_heads",)})
    fields["layer_norm_eps"] = checkpoint.fields.get("layer_norm_eps", 1e-6)
    if checkpoint.is_video:
        fields.update({k: found[k] for k in _VIDEO if k in found})
        fields.update({k: checkpoint.fields[k] for k in ("attention_type", "num_frames") if k in checkpoint.fields})
    fields = apply_overrides(fields, overrides)
    image_size = fields["image_size"]
    sizes = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if any(s % fields["patch_size"] or s <= 0 for s in sizes):
        raise ValueError(f"image_size {image_size} is not a positive multiple of the patch size {fields['patch_size']}")
    if fields["hidden_size"] % fields["num_heads"]:
        raise ValueError(f"num_heads={fields['num_heads']} does not divide the width {fields['hidden_size']}")
    return fields


def convert_checkpoint(
    path: str | Path,
    source: str | None = None,
    *,
    preset: str = "timesformer_base",
    temporal_init: str = "zero",
    resample: str = "bilinear",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    **overrides,
) -> tuple[TimeSformer, dict, ConversionReport]:
    """Read `path` (format `source`, detected when None) and build the TimeSformer it initialises.

    overrides: `TimeSformer` fields, e.g. `num_frames=16, image_size=448, num_classes=174,
    attention_type="joint_space_time"`. Returns the module, its parameters (float32 NumPy arrays) and a
    report of what was mapped, resampled, initialised and dropped.
    """
    log = log or (lambda message: None)
    checkpoint = read_source(path, source)
    kind = "a video model: frames, size, classes default to its own" if checkpoint.is_video else "no temporal tensors"
    log(f"read {len(checkpoint.state)} tensors from {checkpoint.path} (format {checkpoint.source}; {kind})")
    fields = target_fields(checkpoint, preset, **overrides)
    module = TimeSformer(**fields)
    log(
        "target: TimeSformer("
        + ", ".join(f"{k}={fields[k]!r}" for k in ("attention_type", "num_frames", "image_size", "num_classes",
                                                   "hidden_size", "depth", "num_heads", "patch_size"))
        + ")"
    )
    state, report = inflate_state(checkpoint.state, module, temporal_init=temporal_init, resample=resample, seed=seed)
    report.source = checkpoint.source
    return module, state_to_params(state, module), report


def convert_to_directory(
    path: str | Path,
    output: str | Path,
    source: str | None = None,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    **options,
) -> tuple[Path, ConversionReport]:
    """`convert_checkpoint(path, source, **options)`, then write the result to `output` (our orbax format, see
    `converted_checkpoint.py`). Nothing is written unless every step succeeds."""
    log = log or (lambda message: None)
    output = Path(output)
    if output.exists() and not overwrite:  # fail before the (possibly long) conversion
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it")
    started = time.perf_counter()
    module, params, report = convert_checkpoint(path, source, log=log, **options)
    log(f"converted in {time.perf_counter() - started:.1f} s; writing {output}")
    metadata = {
        "input": str(Path(path).absolute()),
        "source": report.source,
        "options": {k: v for k, v in options.items() if k in _CONVERSION_OPTIONS},
        "overrides": {k: v for k, v in options.items() if k not in _CONVERSION_OPTIONS},
        "report": dataclasses.asdict(report),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    fields = {f: getattr(module, f) for f in ARCHITECTURE_FIELDS}
    written = save_converted(output, fields, params, metadata, overwrite=overwrite)
    return written, report
