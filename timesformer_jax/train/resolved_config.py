"""The values a config leaves to the data and the pretrained weights, filled in before a run starts.

* `config.dataset.infer_classes`: the model's class count is the prepared dataset's (a folder of your videos);
* `config.dataset.eval_split = "auto"`: the prepared dataset's `validation` split, else its `test` split;
* `config.init_checkpoint`: the architecture (width, depth, heads, patch, MLP, qkv bias, LayerNorm epsilon) is
  the checkpoint's, in any format `timesformer convert` reads; frames, image size, scheme and classes stay the
  config's. A resumed run takes it from the run's stored config instead of reading the checkpoint again.

What is filled in is logged, and the run stores the resolved config (`run_record`).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import ml_collections

from timesformer_jax.convert.converted_checkpoint import is_converted_checkpoint, read_converted_config
from timesformer_jax.data.sources import dataset_name, prepared_source, source_class_names
from timesformer_jax.model import TimeSformer
from timesformer_jax.train.run_record import stored_config
from timesformer_jax.train.workdir import is_training_workdir

# What a pretrained checkpoint decides; the rest of config.model is the run's.
ARCHITECTURE = ("patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_dim", "qkv_bias",
                "layer_norm_eps")
EVAL_SPLITS = ("validation", "test")  # "auto": the first the prepared dataset has


def checkpoint_architecture(path: str | Path, model_fields: dict) -> dict:
    """The ARCHITECTURE fields of checkpoint `path` (a training workdir, a `timesformer convert` directory, or any
    format it reads, converted for `model_fields`' frames, size, scheme and classes)."""
    from timesformer_jax.convert.config_inference import target_fields
    from timesformer_jax.convert.readers import read_source

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"config.init_checkpoint {path} does not exist")
    if is_training_workdir(path):
        fields = stored_config(path).model.to_dict()
    elif path.is_dir() and is_converted_checkpoint(path):
        fields = read_converted_config(path)["model"]
    else:
        keep = {k: v for k, v in model_fields.items()
                if k in ("attention_type", "num_frames", "image_size", "num_classes") and v is not None}
        fields = target_fields(read_source(path), **keep)
    return {name: fields[name] for name in ARCHITECTURE if name in fields}


def _with_data_fields(config: ml_collections.ConfigDict, log: Callable[[str], None]) -> None:
    dataset = config.dataset
    infer_classes = dataset.get("infer_classes", False)
    if not infer_classes and dataset.eval_split != "auto":
        return
    builder = prepared_source(dataset)
    where = dataset_name(builder)
    if infer_classes:
        classes = len(source_class_names(builder))
        if classes != config.model.num_classes:
            log(f"classes: {classes}, from the prepared dataset {where}")
        config.model.num_classes = classes
    if dataset.eval_split == "auto":
        present = [split for split in EVAL_SPLITS if split in builder.info.splits]
        if not present:
            raise ValueError(f"dataset {where} has no validation or test split to evaluate on (it has "
                             f"{sorted(builder.info.splits)}); add a validation/ or test/ folder and build again, "
                             "or set --config.dataset.eval_split")
        dataset.eval_split = present[0]
        log(f"evaluation split: {present[0]}, from the prepared dataset {where}")


def resolve_config(config: ml_collections.ConfigDict, stored: dict | None,
                   log: Callable[[str], None]) -> ml_collections.ConfigDict:
    """A copy of `config` with the class count and evaluation split from the prepared dataset (where the config
    asks for them) and the architecture from `config.init_checkpoint` (when set): from `stored` (the run's
    stored config, a dict) when it was made from the same init checkpoint, else read from the checkpoint."""
    config = copy.deepcopy(config)
    with config.unlocked():
        _with_data_fields(config, log)
    if not config.get("init_checkpoint"):
        return config
    stored_model = (stored or {}).get("model") if isinstance(stored, dict) else None
    if isinstance(stored_model, dict) and stored.get("init_checkpoint") == config.init_checkpoint:
        architecture = {k: stored_model[k] for k in ARCHITECTURE if k in stored_model}
    else:
        architecture = checkpoint_architecture(config.init_checkpoint, config.model.to_dict())
    changed = {k: v for k, v in architecture.items() if config.model.get(k, getattr(TimeSformer, k)) != v}
    if changed:
        log("architecture from config.init_checkpoint: " + ", ".join(f"{k}={v!r}" for k, v in changed.items()))
    with config.unlocked():
        config.model.update(architecture)
    return config
