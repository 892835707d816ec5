"""Our own checkpoint of converted weights: an orbax parameter tree with the model config stored beside it.

    DIR/
      timesformer.json   {"format": ..., "model": {TimeSformer fields}, "conversion": {source, report, ...}}
      params/            orbax StandardCheckpointer tree, the `params` collection of `TimeSformer.init`
      manifest.json      SHA-256 of every file above (`integrity.py`), verified before anything is read

`timesformer_jax.load_pretrained(DIR)` loads it; training configs name DIR as their initialisation and restore
`params/` straight onto their shardings (`load_converted(DIR, abstract_params)`).

Writing is all-or-nothing: everything goes to a temporary sibling directory that is renamed to DIR at the end,
so a failed or interrupted conversion leaves no DIR behind (and `overwrite=True` swaps an old DIR out only
once the new one is complete).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import orbax.checkpoint as ocp

from timesformer_jax.integrity import has_manifest, verify_manifest, write_manifest
from timesformer_jax.user_files import read_json_object
from timesformer_jax.model.presets import check_model_fields, upgrade_model_fields

FORMAT = "timesformer_jax/converted-v1"
CONFIG_FILE = "timesformer.json"
PARAMS_DIR = "params"
# Fields that define the parameters and the function; run-time knobs (dtype, dropout, remat) are not stored.
ARCHITECTURE_FIELDS = (
    "num_classes", "attention_type", "image_size", "num_frames", "patch_size", "in_channels", "hidden_size",
    "depth", "num_heads", "mlp_dim", "qkv_bias", "layer_norm_eps",
)


def is_converted_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def save_converted(directory: str | Path, fields: dict, params, metadata: dict, overwrite: bool = False) -> Path:
    """Write `params` and the architecture `fields` to `directory` atomically; returns its absolute path."""
    directory = Path(directory).absolute()
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} already exists; choose another output or pass overwrite=True")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=directory.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result should be an ordinary directory
    try:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(staging / PARAMS_DIR, params)
        checkpointer.wait_until_finished()
        checkpointer.close()
        model = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items() if k in ARCHITECTURE_FIELDS}
        config = {"format": FORMAT, "model": model, "conversion": metadata}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        write_manifest(staging)
        if directory.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
            directory.rename(retired / "old")
            staging.rename(directory)
            shutil.rmtree(retired)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def read_converted_config(directory: str | Path) -> dict:
    """The contents of `timesformer.json`, with `model` fields ready for `TimeSformer(**fields)`; ValueError
    naming the file and the field when it is damaged or was edited into something no model has."""
    path = Path(directory) / CONFIG_FILE
    config = read_json_object(path, "a converted checkpoint's config; if damaged, convert the checkpoint again")
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: format {config.get('format')!r} is not {FORMAT!r}")
    model = config.get("model")
    if not isinstance(model, dict):
        raise ValueError(f"{path}: expected a 'model' object of TimeSformer fields, got {model!r}")
    model = config["model"] = upgrade_model_fields(model)  # earlier field names, as an older version wrote them
    if isinstance(model.get("image_size"), list):
        model["image_size"] = tuple(model["image_size"])
    check_model_fields(model, source=f"{path} 'model'")
    return config


def load_converted(directory: str | Path, abstract_params=None):
    """(model fields, params, conversion metadata) of a converted checkpoint.

    `abstract_params`: a tree of `jax.ShapeDtypeStruct` (with shardings, for training) to restore onto; by
    default the stored arrays come back as host NumPy arrays.
    """
    directory = Path(directory).absolute()
    if has_manifest(directory):  # a directory converted before manifests existed has none to check against
        problem = verify_manifest(directory)
        if problem is not None:
            raise ValueError(f"the converted checkpoint {directory} is damaged ({problem}); convert it again "
                             "(`timesformer convert`)")
    config = read_converted_config(directory)
    checkpointer = ocp.StandardCheckpointer()
    try:
        if abstract_params is None:
            params = checkpointer.restore(directory / PARAMS_DIR)
        else:
            params = checkpointer.restore(directory / PARAMS_DIR, abstract_params)
    except Exception as e:  # orbax raises several types for a damaged or mismatched tree
        raise ValueError(f"cannot restore the parameters in {directory / PARAMS_DIR}: {type(e).__name__}: {e}") from e
    finally:
        checkpointer.close()
    return config["model"], params, config.get("conversion", {})

