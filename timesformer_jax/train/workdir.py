"""A training workdir as a model: its config, the parameters of one checkpoint, the dataset's class names.

`load_pretrained(WORKDIR)` uses this, so a model trained with `timesformer train` predicts, exports and converts
like any other checkpoint. Only the parameters are read from the checkpoint (orbax's partial restore), as host
arrays: no optimizer is built and no device or mesh is involved.
"""
from __future__ import annotations

from pathlib import Path

from timesformer_jax.model import TimeSformer, abstract_params, check_model_fields
from timesformer_jax.protocol import protocol_of_clip
from timesformer_jax.train.checkpointing import Checkpointer
from timesformer_jax.train.config import clip_config, model_fields
from timesformer_jax.train.run_record import CONFIG_FILE, stored_config

CHECKPOINTS = "checkpoints"  # a workdir's checkpoint directory


def checkpoint_dir(workdir: str | Path) -> Path:
    return Path(workdir).absolute() / CHECKPOINTS


def is_training_workdir(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_FILE).is_file() and (path / CHECKPOINTS).is_dir()


def read_training_checkpoint(workdir: str | Path,
                             step: int | str | None = None) -> tuple[dict, dict, list | None, dict]:
    """(model fields, host params, class names or None, test protocol) of checkpoint `step` of `workdir` (None:
    the latest; "best": the best by video top-1). The protocol is the one the checkpoint records, else the run
    config's (checkpoints saved before protocols were recorded)."""
    workdir = Path(workdir)
    config = stored_config(workdir)  # a 'model' section always: the schema's, with the stored fields merged in
    fields = model_fields(config)
    check_model_fields(fields, source=f"{workdir / CONFIG_FILE} 'model'")
    checkpointer = Checkpointer(checkpoint_dir(workdir))
    try:
        restored = checkpointer.restore_params(abstract_params(TimeSformer(**fields)),
                                               step=checkpointer.step_for(step))
    finally:
        checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"{workdir} has no checkpoint yet (`timesformer train` writes them)")
    params, meta = restored
    protocol = meta.get("protocol") or protocol_of_clip(clip_config(config))
    return fields, params, meta.get("class_names"), protocol
