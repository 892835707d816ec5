"""Initialising a training run from pretrained weights (`config.init_checkpoint`).

Accepted: a directory written by `tools/convert.py`, or any checkpoint `tools/convert.py` reads (Google ViT
.npz, timm, Hugging Face ViT / Timesformer, official .pyth), converted on the fly to the config's model. The
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

HEAD = "head"


def read_pretrained(path: str | Path, model_fields: dict, log: Callable[[str], None]) -> dict:
    """Host parameters (NumPy) from `path`, made for `model_fields` where the format allows."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config.init_checkpoint {path} does not exist")
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
    flat_init = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(initial)}
    flat_pre = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(pretrained)}
    problems, fresh = [], []
    for key, value in flat_init.items():
        loaded = flat_pre.get(key)
        is_head = key.startswith(f"['{HEAD}']")
        if loaded is not None and np.shape(loaded) == np.shape(value):
            continue
        if is_head:
            fresh.append(key)
        elif loaded is None:
            problems.append(f"missing {key} {np.shape(value)}")
        else:
            problems.append(f"{key}: checkpoint {np.shape(loaded)}, model {np.shape(value)}")
    problems += [f"unexpected {key}" for key in flat_pre if key not in flat_init]
    if problems:
        raise ValueError("config.init_checkpoint does not fit the config's model (convert it for these settings "
                         "with tools/convert.py, or point at the source checkpoint to convert on the fly):\n  "
                         + "\n  ".join(problems[:20]) + (f"\n  ... {len(problems) - 20} more" if len(problems) > 20 else ""))
    if fresh:
        log(f"init: fresh classifier head ({', '.join(fresh)}): the checkpoint's class count differs")

    def pick(path, value):
        key = jax.tree_util.keystr(path)
        return value if key in fresh else np.asarray(flat_pre[key], dtype=value.dtype)

    return jax.tree_util.tree_map_with_path(pick, initial)
