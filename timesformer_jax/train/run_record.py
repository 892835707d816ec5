"""What a training workdir remembers of its run: the config it was started with, and what each rerun changed.

    workdir/config.json          the run's config (the latest accepted one)
    workdir/config_changes.jsonl one line per rerun that changed a field: time, {field: [before, after]}

A rerun compares its config with the stored one before any checkpoint is touched (`check_rerun`). Fields that
decide what the checkpoints hold or what the run is (the model's architecture and classes, the dataset and its
training split, the training clips, the optimizer and its state) stop it with one error naming each field and
both values; the fields in `RESUMABLE_FIELDS` (learning rate and schedule, run length, cadences, batch sizes,
mesh, compute settings, evaluation settings, where the data lies) may change and are listed in one line.
"""
from __future__ import annotations

import json
import time
from fnmatch import fnmatchcase
from pathlib import Path

import ml_collections

from timesformer_jax.model.presets import upgrade_model_fields
from timesformer_jax.train.config import base_config, flat_fields
from timesformer_jax.user_files import read_json_object

CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.jsonl"

# Patterns of the dotted field names a resumed run may change.
RESUMABLE_FIELDS = (
    "optimizer.base_learning_rate", "optimizer.reference_batch_size", "optimizer.weight_decay", "optimizer.epochs",
    "optimizer.clip_grad_norm", "schedule.*", "max_steps",
    "eval_every_epochs", "log_every_steps", "checkpoint.*",
    "batch_size", "eval_batch_size", "shuffle_buffer", "mesh.*", "sharding.*", "aot_executable",
    "model.dtype", "model.remat", "model.remat_policy", "model.attention_impl", "model.splash_min_length",
    "model.drop_path_rate",
    "model.dropout_rate", "model.time_embed_init_std", "model.stage_fc_init_std",
    "model.weight_init",
    "dataset.data_dir", "dataset.layout", "dataset.eval_split",
    "clip.num_temporal_views", "clip.num_spatial_crops", "clip.antialias", "clip.dtype",
    "eval_aggregation", "label_smoothing", "init_checkpoint", "stop_on_plateau.*",
)


class RunConfigError(ValueError):
    """A rerun's config changes a field that decides what the workdir's checkpoints hold."""


def is_resumable(name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in RESUMABLE_FIELDS)


def _plain(config: ml_collections.ConfigDict | dict) -> dict:
    """`config` as JSON gives it back (tuples as lists, FieldReferences as values)."""
    if isinstance(config, ml_collections.ConfigDict):
        return json.loads(config.to_json_best_effort())
    return json.loads(json.dumps(config))


def read_stored_config(workdir: str | Path) -> dict | None:
    """The config stored in `workdir` as a dict, or None when there is none. ValueError naming the file when it
    is not a JSON object."""
    path = Path(workdir) / CONFIG_FILE
    if not path.exists():
        return None
    stored = read_json_object(path, "a training run's config")
    if isinstance(stored.get("model"), dict):  # earlier field names, as an older version wrote them
        stored["model"] = upgrade_model_fields(stored["model"])
        # Runs from before scanned blocks existed stored unrolled blocks: a config that scans cannot resume them.
        stored["model"].setdefault("scan_blocks", False)
    return stored


def stored_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The config stored in `workdir` as a ConfigDict with the schema's field types (so command-line overrides of
    a None field are typed). FileNotFoundError when the workdir holds none."""
    stored = read_stored_config(workdir)
    if stored is None:
        raise FileNotFoundError(f"{Path(workdir) / CONFIG_FILE} does not exist: {workdir} is not a training workdir "
                                "(`timesformer train` writes it), or give --config")
    config = base_config()
    try:
        config.update(stored)
        args = stored.get("optimizer", {}).get("args") if isinstance(stored.get("optimizer"), dict) else None
        if isinstance(args, dict):  # keyword arguments of the optimizer: the stored ones, not merged with sgd's
            config.optimizer.args = ml_collections.ConfigDict(args)
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise ValueError(f"{Path(workdir) / CONFIG_FILE}: not a training config ({type(e).__name__}: {e})") from None
    return config


def config_changes(stored: dict, config: ml_collections.ConfigDict | dict) -> dict[str, tuple]:
    """{field: (stored value, new value)} of every field that differs; fields the stored config does not have
    (added to the schema since) are not differences."""
    before, after = flat_fields(_plain(stored)), flat_fields(_plain(config))
    return {name: (before[name], after.get(name)) for name in sorted(before) if before[name] != after.get(name)
            and (name in after or not is_resumable(name))}


def _listed(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{name} {before!r} -> {after!r}" for name, (before, after) in changes.items())


def check_rerun(workdir: str | Path, stored: dict | None, config: ml_collections.ConfigDict,
                has_checkpoints: bool) -> str | None:
    """Compare `config` with `stored` (`read_stored_config(workdir)`). With checkpoints, a change of a field outside
    RESUMABLE_FIELDS raises RunConfigError naming each such field with both values (nothing is touched); the
    resumable changes are returned as one line to print (None when nothing changed)."""
    if stored is None or not has_checkpoints:
        return None
    changes = config_changes(stored, config)
    refused = {name: change for name, change in changes.items() if not is_resumable(name)}
    if refused:
        raise RunConfigError(
            f"{workdir} holds a run whose checkpoints this config cannot continue: {_listed(refused)} (stored in "
            f"{Path(workdir) / CONFIG_FILE}). Nothing was changed. Rerun with the stored values, or start the new "
            "run in another --workdir (--config.init_checkpoint=" + str(workdir) + " starts it from this run's "
            "weights)")
    if not changes:
        return None
    return f"config changed since the last run of {workdir}: {_listed(changes)}"


def record_config(workdir: str | Path, stored: dict | None, config: ml_collections.ConfigDict) -> None:
    """Store `config` as the run's config; when it replaces `stored` (the config stored before), append the
    differences to CHANGES_FILE (main process only)."""
    workdir = Path(workdir)
    if stored is not None:
        changes = config_changes(stored, config)
        if not changes:
            return
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "changes": {k: list(v) for k, v in changes.items()}}
        with open(workdir / CHANGES_FILE, "a") as f:
            f.write(json.dumps(entry) + "\n")
    temporary = workdir / (CONFIG_FILE + ".tmp")
    temporary.write_text(config.to_json_best_effort(indent=2) + "\n")
    temporary.replace(workdir / CONFIG_FILE)
