"""A training workdir as a model: its config, the parameters of one checkpoint, the dataset's class names.

`load_pretrained(WORKDIR)` uses this, so a model trained with `tools/train.py` predicts, exports and converts
like any other checkpoint. Only the parameters are kept; the optimizer state is restored (orbax needs the whole
tree) on one device and dropped.
"""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from timesformer_jax.model.presets import check_model_fields
from timesformer_jax.protocol import protocol_of_clip
from timesformer_jax.train.run_record import CONFIG_FILE, stored_config


def is_training_workdir(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_FILE).is_file() and (path / "checkpoints").is_dir()


def read_training_checkpoint(workdir: str | Path,
                             step: int | str | None = None) -> tuple[dict, dict, list | None, dict]:
    """(model fields, host params, class names or None, test protocol) of checkpoint `step` of `workdir` (None:
    the latest; "best": the best by video top-1). The protocol is the one the checkpoint records, else the run
    config's (checkpoints saved before protocols were recorded)."""
    from timesformer_jax.model import TimeSformer
    from timesformer_jax.parallel import create_mesh
    from timesformer_jax.train.checkpointing import Checkpointer
    from timesformer_jax.train.config import clip_config, model_fields, optimizer_config, schedule_config
    from timesformer_jax.train.experiment import checkpoint_dir
    from timesformer_jax.train.optimizer import create_optimizer
    from timesformer_jax.train.state import state_shardings

    workdir = Path(workdir)
    config_path = workdir / CONFIG_FILE
    config = stored_config(workdir)  # a 'model' section always: the schema's, with the stored fields merged in
    fields = model_fields(config)
    check_model_fields(fields, source=f"{config_path} 'model'")
    model = TimeSformer(**fields)
    optimizer, _ = create_optimizer(optimizer_config(config), config.batch_size, 1, schedule_config(config))
    mesh = create_mesh({"data": 1}, devices=jax.devices()[:1])
    shardings, abstract = state_shardings(model, optimizer, mesh, model.clip_shape())
    checkpointer = Checkpointer(checkpoint_dir(workdir))
    try:
        restored = checkpointer.restore(abstract, shardings, step=checkpointer.step_for(step))
    finally:
        checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"{workdir} has no checkpoint yet (tools/train.py writes them)")
    state, meta = restored
    params = jax.tree.map(np.asarray, jax.device_get(state.params))
    protocol = meta.get("protocol") or protocol_of_clip(clip_config(config))
    return fields, params, meta.get("class_names"), protocol
