"""Initialising a training run from pretrained weights (`config.init_checkpoint`).

Accepted: a training workdir (its latest checkpoint), a directory written by `timesformer convert`, or any
checkpoint `timesformer convert` reads (Google ViT .npz, timm, Hugging Face ViT / Timesformer, official .pyth),
converted on the fly to the config's model. The
classifier head starts fresh when the class count differs (a Kinetics model fine-tuned on UCF101, an ImageNet
ViT); every other parameter must fit the model exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import numpy as np

from timesformer_jax.convert.conversion import convert_checkpoint
from timesformer_jax.convert.converted_checkpoint import is_converted_checkpoint, load_converted
from timesformer_jax.model.block_layout import is_scanned, to_layout
from timesformer_jax.model.params import TreeMismatch, flat_shapes
from timesformer_jax.train.workdir import is_training_workdir, read_training_checkpoint

HEAD = "head"


def read_pretrained(path: str | Path, model_fields: dict, log: Callable[[str], None]) -> dict:
    """Host parameters (NumPy) from `path`, made for `model_fields` where the format allows."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config.init_checkpoint {path} does not exist")
    if is_training_workdir(path):
        fields, params, _, _ = read_training_checkpoint(path)
        log(f"init: the latest checkpoint of the training run {path} ({fields.get('attention_type')}, "
            f"{fields.get('num_classes')} classes)")
        return params
    if path.is_dir() and is_converted_checkpoint(path):
        fields, params, _ = load_converted(path)
        log(f"init: converted checkpoint {path} ({fields.get('attention_type')}, {fields.get('num_frames')} "
            f"frames, {fields.get('image_size')} px, {fields.get('num_classes')} classes)")
        return params
    overrides = {k: v for k, v in model_fields.items() if v is not None}
    _, params, report = convert_checkpoint(path, None, log=lambda m: log(f"init: {m}"), **overrides)
    log(f"init: converted {path} on the fly ({report.source})")
    return params


def fit_pretrained(pretrained: dict, initial: dict, log: Callable[[str], None]) -> dict:
    """`pretrained` (host arrays) laid over `initial` (the model's freshly initialised parameters, any arrays):
    the head stays from `initial` when its shape differs; any other missing, unexpected or mis-shaped parameter
    is an error."""
    pretrained = to_layout(pretrained, is_scanned(initial))  # checkpoints hold unrolled blocks, runs may scan
    got, want = flat_shapes(pretrained), flat_shapes(initial)
    fresh = [key for key in want if key.startswith(f"['{HEAD}']") and got.get(key) != want[key]]
    TreeMismatch.compare(got, want, ignore=fresh).raise_if_any(
        "config.init_checkpoint does not fit the config's model (convert it for these settings with "
        "`timesformer convert`, or point at the source checkpoint to convert on the fly):")
    if fresh:
        log(f"init: fresh classifier head ({', '.join(fresh)}): the checkpoint's class count differs")
    flat_pretrained = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(pretrained)}

    def pick(path, value):
        key = jax.tree_util.keystr(path)
        return value if key in fresh else np.asarray(flat_pretrained[key], dtype=value.dtype)

    return jax.tree_util.tree_map_with_path(pick, initial)
