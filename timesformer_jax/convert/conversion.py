"""From any supported checkpoint to the parameters of a `TimeSformer` of the requested scheme, frames, size and classes.

A checkpoint flows one way through the stages, each its own module:

    readers/           any format on disk -> one canonical state dict (official names, PyTorch layout)
    config_inference   the state dict's tensors (+ overrides, preset) -> the target's TimeSformer fields
    inflate            the state dict -> the target's complete state dict (new stages, resampled embeddings, head)
    to_flax            the complete state dict -> the module's Flax parameter tree
"""
from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import Callable

from timesformer_jax.convert.converted_checkpoint import ARCHITECTURE_FIELDS, save_converted
from timesformer_jax.convert.inflate import ConversionReport, inflate_state
from timesformer_jax.convert.config_inference import target_fields
from timesformer_jax.convert.readers import read_source
from timesformer_jax.convert.to_flax import state_to_params
from timesformer_jax.model import TimeSformer
from timesformer_jax.model.block_layout import to_layout
from timesformer_jax.protocol import model_protocol

_CONVERSION_OPTIONS = ("preset", "temporal_init", "resample", "seed")  # convert_checkpoint's non-field keywords


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
    unrolled = module.clone(scan_blocks=False)  # every reader maps official names onto unrolled blocks
    state, report = inflate_state(checkpoint.state, unrolled, temporal_init=temporal_init, resample=resample,
                                  seed=seed)
    report.source = checkpoint.source
    report.protocol = model_protocol(module.num_frames, module.config_grid[0] * module.patch_size, checkpoint.protocol)
    if checkpoint.class_names and "head.weight" in report.mapped and len(checkpoint.class_names) == module.num_classes:
        report.class_names = list(checkpoint.class_names)
    return module, to_layout(state_to_params(state, unrolled), module.scan_blocks), report


def convert_to_directory(
    path: str | Path,
    output: str | Path,
    source: str | None = None,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    class_names: list[str] | None = None,
    **options,
) -> tuple[Path, ConversionReport]:
    """`convert_checkpoint(path, source, **options)`, then write the result to `output` (our orbax format, see
    `converted_checkpoint.py`). `class_names` (one per class of the model) are stored with it, in place of
    any the checkpoint has. Nothing is written unless every step succeeds."""
    log = log or (lambda message: None)
    output = Path(output)
    if output.exists() and not overwrite:  # fail before the (possibly long) conversion
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it")
    started = time.perf_counter()
    module, params, report = convert_checkpoint(path, source, log=log, **options)
    if class_names is not None:
        if len(class_names) != module.num_classes:
            raise ValueError(f"{len(class_names)} class names for a model with {module.num_classes} classes")
        report.class_names = list(class_names)
    log(f"converted in {time.perf_counter() - started:.1f} s; writing {output}")
    metadata = {
        "input": str(Path(path).absolute()),
        "source": report.source,
        "options": {k: v for k, v in options.items() if k in _CONVERSION_OPTIONS},
        "overrides": {k: v for k, v in options.items() if k not in _CONVERSION_OPTIONS},
        "report": dataclasses.asdict(report),
        "protocol": report.protocol,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    fields = {f: getattr(module, f) for f in ARCHITECTURE_FIELDS}
    written = save_converted(output, fields, to_layout(params, scanned=False), metadata, overwrite=overwrite)
    return written, report
