"""Orbax checkpoints of the TrainState: async saves, keep the last K plus the best, restore onto any mesh.

    workdir/checkpoints/<step>/{state, meta}

`meta` is a JSON dict (data position, history) saved with the state. Saves made after an evaluation carry its
metrics; the one with the highest `BEST_METRIC` is kept even when it falls out of the last K. Restoring takes
the *target* shardings, so a run saved on one mesh shape resumes on another.

Integrity: every step carries `manifest.json` (SHA-256 of each file of `state/` and `meta/`, `integrity.py`),
written after orbax has written everything and before it commits the step. A restore verifies it, restores, and
checks that every restored value is finite; `restore_intact` falls back from a damaged step to the newest intact
one, moving the damaged one to `<checkpoints>.damaged/` for inspection.
"""
from __future__ import annotations

import collections
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from timesformer_jax.integrity import has_manifest, verify_manifest, write_manifest
from timesformer_jax.parallel import with_shardings

BEST_METRIC = "video_top1"


ITEMS = ("state", "meta")


def _best_metric(metrics: dict) -> float:
    return float(metrics[BEST_METRIC])


class DamagedCheckpointError(ValueError):
    """A checkpoint failed verification, could not be read, or holds non-finite values; or none is intact."""


def non_finite_report(tree) -> str | None:
    """None when every floating-point value of `tree` is finite; else "<count> non-finite values, first in
    <leaf>". Counted with NumPy over this host's shards (no compilation; a zero-copy view on CPU), summed over
    hosts so that every host takes the same decision."""
    named, counts = [], []
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            continue
        shards = leaf.addressable_shards if isinstance(leaf, jax.Array) else None
        arrays = [np.asarray(s.data) for s in shards if s.replica_id == 0] if shards is not None else [np.asarray(leaf)]
        named.append(jax.tree_util.keystr(path))
        counts.append(sum(int(a.size - np.count_nonzero(np.isfinite(a))) for a in arrays))
    if jax.process_count() > 1 and counts:
        from jax.experimental import multihost_utils

        counts = list(np.asarray(multihost_utils.process_allgather(np.asarray(counts))).sum(axis=0))
    bad = [(name, int(count)) for name, count in zip(named, counts) if count]
    if not bad:
        return None
    total = sum(count for _, count in bad)
    return f"{total} non-finite values, first in {bad[0][0]}" + (f" and {len(bad) - 1} more arrays" if len(bad) > 1 else "")


def committed_steps(directory: str | Path) -> list[int]:
    """The committed steps of `directory` (folders named by a number), newest first, read without orbax."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir()), reverse=True)


def has_checkpoints(directory: str | Path) -> bool:
    return bool(committed_steps(directory))


class CheckpointSaveError(RuntimeError):
    """Writing a checkpoint failed (a full disk, a lost mount); the steps committed before it are intact."""


# A checkpoint takes its arrays' bytes plus OCDBT's index and orbax's metadata (about 1% for the demo's 2.7 MB
# state); this much more must be free before a save starts.
SPACE_MARGIN_FRACTION = 0.05
SPACE_MARGIN_BYTES = 1 << 20


def state_bytes(tree) -> int:
    """Bytes a checkpoint of `tree` stores: each array once (its global size, however it is sharded)."""
    return int(sum(np.dtype(leaf.dtype).itemsize * int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree)))


def space_shortage(directory: Path, needed: int) -> str | None:
    """None when the filesystem of `directory` has room for `needed` bytes plus the margin; else what is short.
    Every process takes the same decision (the first process's view counts when they differ). Unknown space
    (an unsupported filesystem) is not a shortage."""
    existing = next((p for p in (directory, *directory.parents) if p.exists()), directory)
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        free = None
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        free = int(multihost_utils.broadcast_one_to_all(np.int64(-1 if free is None else free)))
        free = None if free < 0 else free
    wanted = int(needed * (1 + SPACE_MARGIN_FRACTION)) + SPACE_MARGIN_BYTES
    if free is None or free >= wanted:
        return None
    return (f"it needs about {_megabytes(wanted)} and the filesystem has {_megabytes(free)} free (No space left "
            "on device)")


def _megabytes(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"


class CheckpointLayoutError(ValueError):
    """A checkpoint holds arrays of other shapes than the run's state: another model or optimizer, not damage."""


def _shape_counts(tree) -> collections.Counter:
    return collections.Counter((tuple(leaf.shape), str(np.dtype(leaf.dtype))) for leaf in jax.tree.leaves(tree))


def metrics_problem(step_directory: Path) -> str | None:
    """What is wrong with a step's `metrics/metrics` (the evaluation orbax ranks the best by), or None when it is
    absent or a JSON object with a numeric BEST_METRIC."""
    path = step_directory / "metrics" / "metrics"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return f"its metrics file {path} cannot be read ({type(e).__name__})"
    if not isinstance(metrics, dict) or not isinstance(metrics.get(BEST_METRIC), (int, float)):
        return f"its metrics file {path} holds no number {BEST_METRIC!r}"
    return None


def _unreadable(error: Exception) -> str:
    """A checkpoint's problem when its files cannot be read as saved: the error's type and first line."""
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    return f"cannot be read: {type(error).__name__}: {first_line}"


class Checkpointer:
    def __init__(self, directory: str | Path, max_to_keep: int = 3, save_interval_steps: int = 1,
                 log: Callable[[str], None] | None = None):
        """Checkpoints of `directory`. A step whose metrics file cannot be read (orbax would fail on it) is
        damaged: reported through `log` and moved to `<directory>.damaged/` before orbax opens the folder."""
        self.directory = Path(directory).absolute()
        self._unsealed: collections.deque[int] = collections.deque()  # saves started, not yet sealed (in order)
        self._unsealed_lock = threading.Lock()
        self._set_aside_unreadable_metrics(log or (lambda message: None))
        keep = checkpoint_managers.AnyPreservationPolicy([
            checkpoint_managers.LatestN(n=max_to_keep),
            checkpoint_managers.BestN(get_metric_fn=_best_metric, n=1, keep_checkpoints_without_metrics=False),
        ])
        self.manager = ocp.CheckpointManager(
            self.directory,
            item_names=ITEMS,
            # handlers known from the start, so the metadata of a step is readable before any restore
            item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
            options=ocp.CheckpointManagerOptions(
                save_interval_steps=save_interval_steps, preservation_policy=keep, best_fn=_best_metric,
                best_mode="max", async_options=ocp.AsyncOptions(post_finalization_callback=self._seal),
            ),
        )

    def _set_aside_unreadable_metrics(self, log: Callable[[str], None]) -> None:
        steps = committed_steps(self.directory)
        damaged = [(step, problem) for step in steps
                   if (problem := metrics_problem(self.directory / str(step))) is not None]
        for step, problem in damaged:
            left = [s for s in steps if s not in dict(damaged)]
            target = f"resuming can use step {left[0]}" if left else "no other checkpoint is left"
            log(f"checkpoint {step} in {self.directory} is damaged ({problem}): {target}; moved to "
                f"{self._move_aside(step)}")
        if damaged and jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("checkpoints with unreadable metrics moved aside")

    def save(self, step: int, state, meta: dict, force: bool = False, metrics: dict | None = None) -> bool:
        """Start an async save (returns whether one was started: interval, or `force`). `metrics` (with
        BEST_METRIC) rank it for keep-the-best. CheckpointSaveError when this or an earlier save failed."""
        if not (force or self.manager.should_save(step)):
            return False
        self.wait()  # orbax waits for the previous save here too; the free space is then what it left
        shortage = space_shortage(self.directory, state_bytes(state))
        if shortage is not None:
            raise CheckpointSaveError(f"not writing checkpoint {step} in {self.directory}: {shortage}; "
                                      f"{self._what_is_kept(step)}. Free disk space first")
        with self._unsealed_lock:
            self._unsealed.append(step)
        try:
            started = self.manager.save(
                step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                force=force, metrics=metrics,
            )
        except Exception as e:  # this save, or an earlier one still in flight (reported by this call)
            raise self._save_failed(e, step) from None
        if not started:
            with self._unsealed_lock:
                self._unsealed.remove(step)
        return started

    def _save_failed(self, error: Exception, step: int | None = None) -> CheckpointSaveError:
        """The error for a failed save: the oldest save still in flight (else `step`) failed; what is intact, how
        to go on."""
        with self._unsealed_lock:
            step = self._unsealed[0] if self._unsealed else step
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        which = f"checkpoint {step}" if step is not None else "a checkpoint"
        return CheckpointSaveError(f"writing {which} in {self.directory} failed ({type(error).__name__}: "
                                   f"{first_line}); {self._what_is_kept(step)}. Free disk space or fix the mount "
                                   "first")

    def _what_is_kept(self, step: int | None) -> str:
        """What a failed or refused save of `step` leaves: the newest committed checkpoint before it, if any."""
        try:
            committed = [s for s in self.manager.all_steps() if step is None or s < step]
        except Exception:
            committed = []
        return (f"the newest committed checkpoint, step {max(committed)}, is intact and nothing before it was "
                f"lost; rerunning the same command resumes from it" if committed else "no checkpoint had been "
                "committed yet; rerunning starts the run afresh")

    def _seal(self) -> None:
        """orbax's post-finalization callback (background thread, one save at a time, in order): every file of
        the oldest unsealed step is written and it is not committed yet. Write its manifest into the temporary
        directory (main process only)."""
        with self._unsealed_lock:
            step = self._unsealed.popleft() if self._unsealed else None
        if step is None or jax.process_index() != 0:
            return
        pending = sorted(self.directory.glob(f"{step}.orbax-checkpoint-tmp*")) or [self.directory / str(step)]
        write_manifest(pending[0], ITEMS)

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

    def layout_difference(self, step: int, abstract_state, item: str | None = None) -> str | None:
        """None when checkpoint `step` stores arrays of the shapes and dtypes `abstract_state` has (read from its
        metadata, no array is loaded); else what differs. `item`: compare only that entry of the stored state
        (e.g. "params"). Unreadable metadata is left to the restore."""
        try:
            stored = self.manager.item_metadata(step).state
        except Exception:
            return None
        stored = getattr(stored, "tree", stored)
        if stored is None:
            return None
        if item is not None:
            stored = stored.get(item) if isinstance(stored, dict) else None
            if stored is None:
                return f"it stores no {item!r}"
        have, want = _shape_counts(stored), _shape_counts(abstract_state)
        if have == want:
            return None
        extra, missing = have - want, want - have
        sample = lambda counts: ", ".join(f"{shape} {dtype}" for shape, dtype in list(counts)[:3])
        return (f"it stores {sum(have.values())} arrays, the run's state has {sum(want.values())}"
                + (f"; only in the checkpoint: {sample(extra)}" if extra else "")
                + (f"; only in the run: {sample(missing)}" if missing else ""))

    def check_layout(self, step: int, abstract_state) -> None:
        """CheckpointLayoutError when checkpoint `step` was saved from another model or optimizer layout."""
        difference = self.layout_difference(step, abstract_state)
        if difference is not None:
            raise CheckpointLayoutError(
                f"checkpoint {step} in {self.directory} was saved from another model or optimizer than this "
                f"config's ({difference}); nothing was moved. Use the config the run was trained with (the "
                "workdir's config.json), or another --workdir")

    def _file_problem(self, step: int) -> str | None:
        """What is wrong with the files of checkpoint `step` against its manifest, or None. A step without a
        manifest is damaged when another step of the run has one (only checkpoints saved before manifests existed
        have none)."""
        directory = self.directory / str(step)
        if has_manifest(directory):
            return verify_manifest(directory)
        if any(has_manifest(self.directory / str(other)) for other in self.all_steps()):
            return "its manifest.json is missing, while the run's other checkpoints have one"
        return None

    def _verified_restore(self, step: int, abstract_state, shardings):
        """(None, (state, meta)) when checkpoint `step` verifies, restores and is finite; else (what is wrong,
        None). A step without a manifest is damaged when another step of the run has one (only checkpoints
        saved before manifests existed have none); those are only restored and checked finite."""
        problem = self._file_problem(step)
        if problem is not None:
            return problem, None
        target = with_shardings(abstract_state, shardings)
        try:
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
        except Exception as e:  # TensorStore, orbax and JSON errors alike: the file cannot be read as saved
            return _unreadable(e), None
        if not isinstance(restored.meta, dict):
            return "meta is not a JSON object", None
        non_finite = non_finite_report(restored.state)
        if non_finite is not None:
            return non_finite, None
        return None, (restored.state, restored.meta)

    def _existing_step(self, step: int | None) -> int | None:
        """`step`, or the latest when None (None when there is no checkpoint); FileNotFoundError when `step` is
        not a checkpoint of this directory."""
        step = self.latest_step() if step is None else step
        if step is not None and step not in self.manager.all_steps():
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; have {self.all_steps()}")
        return step

    def restore(self, abstract_state, shardings, step: int | None = None):
        """(state on `shardings`, meta) of `step` (default: the latest), or None when there is no checkpoint.
        DamagedCheckpointError (one line, naming the step and the problem) when it does not verify."""
        step = self._existing_step(step)
        if step is None:
            return None
        self.check_layout(step, abstract_state)
        problem, restored = self._verified_restore(step, abstract_state, shardings)
        if problem is not None:
            raise DamagedCheckpointError(f"checkpoint {step} in {self.directory} is damaged ({problem})")
        return restored

    def restore_params(self, abstract_params, step: int | None = None) -> tuple[dict, dict] | None:
        """(params as host numpy arrays, meta) of checkpoint `step` (default: the latest), or None when there is
        none. Only the parameters are read: no optimizer, mesh or device placement is needed (a trained model for
        inference). The files are verified against the manifest first; CheckpointLayoutError when the stored
        parameters are not `abstract_params`' shapes, DamagedCheckpointError when they do not verify, cannot be
        read or hold non-finite values."""
        step = self._existing_step(step)
        if step is None:
            return None
        difference = self.layout_difference(step, abstract_params, item="params")
        if difference is not None:
            raise CheckpointLayoutError(f"checkpoint {step} in {self.directory} holds parameters of another model "
                                        f"than its run's config ({difference})")
        problem = self._file_problem(step)
        directory = self.directory / str(step)
        if problem is None:
            as_host = jax.tree.map(lambda a: ocp.ArrayRestoreArgs(restore_type=np.ndarray, dtype=a.dtype),
                                   abstract_params)
            try:
                params = ocp.PyTreeCheckpointHandler().restore(directory / "state", args=ocp.args.PyTreeRestore(
                    item={"params": abstract_params}, restore_args={"params": as_host}, partial_restore=True))["params"]
                meta = ocp.JsonCheckpointHandler().restore(directory / "meta")
            except Exception as e:  # TensorStore, orbax and JSON errors alike: the file cannot be read as saved
                problem = _unreadable(e)
            else:
                problem = non_finite_report(params) if isinstance(meta, dict) else "meta is not a JSON object"
        if problem is not None:
            raise DamagedCheckpointError(f"checkpoint {step} in {self.directory} is damaged ({problem})")
        return params, meta

    def restore_intact(self, abstract_state, shardings, log: Callable[[str], None]):
        """(state, meta) of the newest checkpoint that verifies, or None when there is none at all. Each damaged
        newer one is reported in one line and moved to `<checkpoints>.damaged/<step>-<time>`; when every one is
        damaged, DamagedCheckpointError names each checkpoint and why it was rejected. A checkpoint of another
        layout than `abstract_state` raises CheckpointLayoutError before anything is moved."""
        rejected = []
        found = None
        for step in sorted(self.manager.all_steps(), reverse=True):
            self.check_layout(step, abstract_state)  # another config, not damage: stop before moving anything
            problem, restored = self._verified_restore(step, abstract_state, shardings)
            if problem is None:
                found = (step, restored)
                break
            rejected.append((step, problem))
        for step, problem in rejected:
            aside = self._move_aside(step)
            target = f"resuming from {found[0]}" if found else "no intact checkpoint left"
            log(f"checkpoint {step} in {self.directory} is damaged ({problem}): {target}; moved to {aside}")
        if rejected:
            self._sync_and_reload()
        if found is None and rejected:
            raise DamagedCheckpointError(
                f"no intact checkpoint in {self.directory}: " + "; ".join(f"{step} ({why})" for step, why in rejected)
                + f". They were moved to {self.damaged_directory} for inspection; delete the workdir's checkpoints "
                "or point --workdir elsewhere to start afresh")
        return None if found is None else found[1]

    @property
    def damaged_directory(self) -> Path:
        return self.directory.with_name(self.directory.name + ".damaged")

    def _move_aside(self, step: int) -> Path:
        aside = self.damaged_directory / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
        if jax.process_index() == 0:
            aside.parent.mkdir(parents=True, exist_ok=True)
            suffix = 0
            while aside.exists():
                suffix += 1
                aside = aside.with_name(f"{step}-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}")
            (self.directory / str(step)).rename(aside)
        return aside

    def _sync_and_reload(self) -> None:
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("checkpoints moved aside")
        self.manager.reload()

    def wait(self) -> None:
        """Wait for the saves in flight; CheckpointSaveError when one failed."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise self._save_failed(e) from None

    def close(self) -> None:
        """Wait for the saves in flight and release orbax's threads (also when a save failed: then
        CheckpointSaveError)."""
        try:
            self.wait()
        finally:
            try:
                self.manager.close()
            except Exception:  # the failed save's error again: reported by wait()
                pass
