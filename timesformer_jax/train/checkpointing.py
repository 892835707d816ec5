"""Orbax checkpoints of the TrainState: async saves, keep the last K plus the best, restore onto any mesh.

    workdir/checkpoints/<step>/{state, meta}

`meta` is a JSON dict (data position, history) saved with the state. Saves made after an evaluation carry its
metrics; the one with the highest `BEST_METRIC` is kept even when it falls out of the last K. Restoring takes
the *target* shardings, so a run saved on one mesh shape resumes on another.
"""
from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

BEST_METRIC = "video_top1"


def _best_metric(metrics: dict) -> float:
    return float(metrics[BEST_METRIC])


class Checkpointer:
    def __init__(self, directory: str | Path, max_to_keep: int = 3, save_interval_steps: int = 1):
        self.directory = Path(directory).absolute()
        keep = checkpoint_managers.AnyPreservationPolicy([
            checkpoint_managers.LatestN(n=max_to_keep),
            checkpoint_managers.BestN(get_metric_fn=_best_metric, n=1, keep_checkpoints_without_metrics=False),
        ])
        self.manager = ocp.CheckpointManager(
            self.directory,
            item_names=("state", "meta"),
            options=ocp.CheckpointManagerOptions(
                save_interval_steps=save_interval_steps, preservation_policy=keep, best_fn=_best_metric,
                best_mode="max",
            ),
        )

    def save(self, step: int, state, meta: dict, force: bool = False, metrics: dict | None = None) -> bool:
        """Start an async save (returns whether one was started: interval, or `force`). `metrics` (with
        BEST_METRIC) rank it for keep-the-best."""
        return self.manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=force, metrics=metrics,
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        """The kept step with the highest BEST_METRIC, or None when no save carried metrics."""
        return self.manager.best_step()

    def step_for(self, step: int | str | None) -> int | None:
        """The step that `step` names: an int as itself, None (the latest) as None, "best" as `best_step()`;
        FileNotFoundError when "best" names nothing (no save carried metrics)."""
        if step == "best":
            best = self.best_step()
            if best is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory} carries evaluation metrics")
            return best
        return None if step is None else int(step)

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def reached_preemption(self, step: int) -> bool:
        """Multi-host runs: every host reached the preemption sync point (jax.distributed's notice)."""
        return self.manager.reached_preemption(step)

    def restore(self, abstract_state, shardings, step: int | None = None):
        """(state on `shardings`, meta) of `step` (default: the latest), or None when there is no checkpoint."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        if step not in self.manager.all_steps():
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; have {self.all_steps()}")
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
