"""Orbax checkpoints of the TrainState: periodic async saves, keep the last K, restore onto any mesh.

    workdir/checkpoints/<step>/{state, meta}

`meta` is a JSON dict (epoch, data position, metrics) saved with the state. Restoring takes the *target*
shardings, so a run saved on one mesh shape resumes on another.
"""
from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory: str | Path, max_to_keep: int = 3, save_interval_steps: int = 1):
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            item_names=("state", "meta"),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, save_interval_steps=save_interval_steps),
        )

    def save(self, step: int, state, meta: dict, force: bool = False) -> bool:
        """Start an async save (returns whether one was started: interval, or `force`)."""
        return self.manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=force,
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, abstract_state, shardings, step: int | None = None):
        """(state on `shardings`, meta) of `step` (default: the latest), or None when there is no checkpoint."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings)
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
        )
        return restored.state, restored.meta

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
