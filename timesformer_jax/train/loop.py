"""The training loop: resume or initialise, train with periodic checkpoints and evaluations, stop cleanly.

    workdir/
      config.json           the run's config, compared with every rerun's before any checkpoint is touched
      config_changes.jsonl  what each rerun changed (run_record.py)
      run.lock              held while a run trains (workdir_lock.py)
      checkpoints/<step>/   orbax: TrainState + meta (last `checkpoint.keep`, plus the best by video top-1;
                            meta holds the data position, class names and the test protocol)
      metrics.jsonl         train / eval metrics history (the curves are drawn from it)
      tensorboard/          event files
      curves.png            loss and accuracy, drawn when the run ends (TensorBoard shows them live)
      eval/                 the latest evaluation: metrics.json, per-class accuracy, confusion matrix CSV (and its
                            PNG, drawn when the run ends)

A run is a pure function of (config, step): the input stream of epoch e is seeded by (seed, e) and a resumed
run skips the batches already consumed, so stop-and-resume gives the same parameters as running straight
through. Metrics are fetched from the device only at logging points and before every save; a non-finite loss,
gradient norm or updated state stops the run before anything is saved after it, so the last checkpoint is
always good.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import jax
import ml_collections

from timesformer_jax.data.pipeline import eval_dataset, eval_num_batches, train_dataset
from timesformer_jax.figures import plot_curves
from timesformer_jax.parallel import global_batch, sharding_context
from timesformer_jax.protocol import protocol_of_clip
from timesformer_jax.train.checkpointing import BEST_METRIC, Checkpointer, has_checkpoints
from timesformer_jax.train.config import check_config
from timesformer_jax.train.evaluation import EvalResult, evaluate, plot_eval_confusion, write_eval_reports
from timesformer_jax.train.experiment import (Experiment, build_experiment, epoch_seed, step_config,
                                              step_functions)
from timesformer_jax.train.metric_writers import MetricWriter, read_history
from timesformer_jax.train.plateau import PLATEAU_METRIC, Plateau, find_plateau, plateau_rule
from timesformer_jax.train.preemption import stop_on_signals
from timesformer_jax.train.pretrained_init import fit_pretrained, read_pretrained
from timesformer_jax.train.progress import ProgressBar, format_duration
from timesformer_jax.train.resolved_config import resolve_config
from timesformer_jax.train.run_record import check_rerun, read_stored_config, record_config
from timesformer_jax.train.saved_step import executable_meta, load_train_step
from timesformer_jax.train.state import STATE_FINITE, create_train_state, make_eval_step
from timesformer_jax.train.workdir import checkpoint_dir
from timesformer_jax.train.workdir_lock import workdir_lock

CURVES_FILE = "curves.png"
EVAL_DIR = "eval"


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN / inf loss, gradient norm or state."""


class WorkdirError(ValueError):
    """The workdir cannot be created or written."""


@dataclasses.dataclass
class RunSummary:
    workdir: str
    attention_type: str
    first_step: int
    last_step: int
    total_steps: int
    seconds: float
    clips_per_second: float
    stopped_by: str | None = None  # a signal name when the run was interrupted
    eval_metrics: dict | None = None  # the last evaluation
    best_step: int | None = None
    plateau: dict | None = None  # where config.stop_on_plateau ended the run (train.plateau.Plateau's fields)

    def text(self) -> str:
        lines = [f"run in {self.workdir}: {self.attention_type}, steps {self.first_step} -> {self.last_step} of "
                 f"{self.total_steps} in {format_duration(self.seconds)} ({self.clips_per_second:.1f} clips/s)"]
        if self.stopped_by:
            lines.append(f"stopped by {self.stopped_by} at step {self.last_step}; checkpoint saved; run the same "
                         "command again to resume")
        if self.plateau:
            lines.append(Plateau(**self.plateau).text())
        if self.eval_metrics:
            m = self.eval_metrics
            lines.append(f"eval: video top-1 {100 * m['video_top1']:.2f}%  top-5 {100 * m['video_top5']:.2f}%  "
                         f"clip top-1 {100 * m['clip_top1']:.2f}%  top-5 {100 * m['clip_top5']:.2f}%  "
                         f"loss {m['loss']:.4f}")
        if self.best_step is not None:
            lines.append(f"best checkpoint (by {BEST_METRIC}): step {self.best_step}")
        return "\n".join(lines)


def _is_main() -> bool:
    return jax.process_index() == 0


def _print_on_main(message: str) -> None:
    if _is_main():
        print(message, flush=True)


def _initial_state(exp: Experiment, log: Callable[[str], None]):
    state = create_train_state(exp.model, exp.optimizer, exp.mesh, exp.video_shape, seed=exp.config.seed,
                               shardings=exp.shardings, rules=exp.rules)
    if not exp.config.init_checkpoint:
        return state
    pretrained = read_pretrained(exp.config.init_checkpoint, exp.config.model.to_dict(), log)
    params = fit_pretrained(pretrained, state.params, log)
    return create_train_state(exp.model, exp.optimizer, exp.mesh, exp.video_shape, init_params=params,
                              shardings=exp.shardings, rules=exp.rules)


def run_evaluation(exp: Experiment, params, eval_step, step: int, directory: Path, log: Callable[[str], None],
                   should_stop: Callable[[], bool] | None = None) -> EvalResult | None:
    """Evaluate `params` on the eval split; write the report tables to `directory` (process 0). Returns the
    result, or None when `should_stop()` turned true first (single process)."""
    split = exp.config.dataset.eval_split
    num_batches = eval_num_batches(exp.num_examples(split), jax.process_count(), exp.clip.num_views,
                                   exp.eval_local_batch)
    batches = eval_dataset(exp.data_source, split, exp.eval_local_batch, exp.clip, num_batches=num_batches)
    started = time.perf_counter()
    result = evaluate(eval_step, params, batches.as_numpy_iterator(), exp.mesh, len(exp.class_names),
                      exp.config.eval_aggregation, should_stop=should_stop if jax.process_count() == 1 else None)
    if result is None:
        log(f"evaluation at step {step} abandoned after {time.perf_counter() - started:.1f}s: stop requested")
        return None
    metrics = result.metrics()
    log(f"eval at step {step}: {result.num_videos} videos x {exp.clip.num_views} views in "
        f"{time.perf_counter() - started:.1f}s: video top-1 {100 * metrics['video_top1']:.2f}% "
        f"top-5 {100 * metrics['video_top5']:.2f}%, clip top-1 {100 * metrics['clip_top1']:.2f}%")
    if _is_main():
        write_eval_reports(result, exp.class_names, directory, step)
    return result


class PendingMetrics:
    """Train-step metrics still on the device; `drain()` fetches them, checks them (loss, gradient norm and the
    updated state finite) and averages them."""

    def __init__(self):
        self.items: list[tuple[int, dict]] = []

    def add(self, step: int, metrics) -> None:
        self.items.append((step, metrics))

    def drain(self) -> dict | None:
        if not self.items:
            return None
        fetched = jax.device_get(self.items)
        self.items = []
        for step, metrics in fetched:
            for name in ("loss", "grad_norm"):
                if not math.isfinite(float(metrics[name])):
                    raise NonFiniteLossError(
                        f"{name} is {float(metrics[name])} at step {step} (learning rate "
                        f"{float(metrics['learning_rate']):.3g})")
            if float(metrics.get(STATE_FINITE, 1)) != 1:  # executables saved before the check lack it
                raise NonFiniteLossError(
                    f"the parameters or optimizer state hold non-finite values after step {step} (loss "
                    f"{float(metrics['loss']):.4g}, learning rate {float(metrics['learning_rate']):.3g})")
        names = [name for name in fetched[0][1] if name != STATE_FINITE]
        return {name: sum(float(m[name]) for _, m in fetched) / len(fetched) for name in names}


@dataclasses.dataclass(frozen=True)
class DueActions:
    """What the loop does after a step: log (also checks finiteness), evaluate, save."""

    log: bool
    evaluate: bool
    save: bool


def due_actions(config: ml_collections.ConfigDict, exp: Experiment, step: int, stopping: bool) -> DueActions:
    """The periodic actions after `step`: evaluate at the configured epoch ends and at the last step; save every
    `checkpoint.every_steps`, after each evaluation and when stopping (then without evaluating); log every
    `log_every_steps` and before every save, so nothing non-finite is ever saved."""
    epoch_end = step % exp.steps_per_epoch == 0
    evaluate = not stopping and (
        step == exp.last_step or (epoch_end and (step // exp.steps_per_epoch) % config.eval_every_epochs == 0))
    save = stopping or evaluate or step % config.checkpoint.every_steps == 0
    return DueActions(log=save or step % config.log_every_steps == 0, evaluate=evaluate, save=save)


def _restore_or_initialise(exp: Experiment, checkpointer: Checkpointer, log) -> tuple:
    """(state, first step): the latest intact checkpoint (damaged newer ones moved aside), else a fresh (or
    pretrained) initialisation."""
    restored = checkpointer.restore_intact(exp.abstract, exp.shardings, log)
    if restored is None:
        return _initial_state(exp, log), 0
    state, meta = restored
    if meta.get("steps_per_epoch") not in (None, exp.steps_per_epoch):
        log(f"warning: the checkpoint was made with {meta['steps_per_epoch']} steps per epoch, this config has "
            f"{exp.steps_per_epoch} (batch size or dataset changed): the data order will not match")
    log(f"resumed from step {int(state.step)} ({checkpointer.directory})")
    return state, int(state.step)


def _run_steps(exp: Experiment, log) -> tuple[Callable, Callable]:
    """(train_step, eval_step): jitted here, or the train step `timesformer compile --save` compiled for this
    run (`config.aot_executable`)."""
    train_step, eval_step = step_functions(exp)
    path = exp.config.get("aot_executable")
    if not path:
        return train_step, eval_step
    compiled = load_train_step(path, executable_meta(exp))
    log(f"train step: the precompiled executable {path}")

    def run(state, batch):
        with sharding_context(exp.mesh, exp.rules):
            return compiled(state, batch)

    return run, eval_step


def epoch_batches(exp: Experiment, step: int):
    """Host batches from `step` to the end of its epoch (or the last step): the epoch's stream, seeded by
    (seed, epoch), with the batches before `step` skipped."""
    epoch, in_epoch = divmod(step, exp.steps_per_epoch)
    batches = train_dataset(
        exp.data_source, exp.config.dataset.train_split, exp.local_batch, exp.clip,
        seed=epoch_seed(exp.config.seed, epoch), shuffle_buffer=exp.config.shuffle_buffer, repeat=False,
        skip_batches=in_epoch,
    )
    return batches.take(min(exp.steps_per_epoch, exp.last_step - epoch * exp.steps_per_epoch) - in_epoch)


def host_batches(exp: Experiment, first_step: int):
    """The host batches of steps `first_step + 1` .. `exp.last_step`, epoch after epoch. The next epoch's
    pipeline is built on this thread when an epoch starts, and warmed up (its shuffle buffer filled, its first
    batch made) on another while the epoch trains: building it at the boundary idled the accelerator ~4 s an epoch
    in the demo. Building it on the other thread as well stalled the demo for 5-21 s at some epoch boundaries on
    one or two CPU cores (the build traces the pipeline's functions in Python, competing for the GIL with the
    thread that runs the steps); built here, the demo's boundaries on one core took 3-4 s, evaluation included."""

    def started(numpy_batches):
        first = next(numpy_batches, None)
        return iter(()) if first is None else itertools.chain([first], numpy_batches)

    with ThreadPoolExecutor(1, thread_name_prefix="next-epoch") as prefetcher:
        step = first_step
        upcoming = prefetcher.submit(started, epoch_batches(exp, step).as_numpy_iterator())
        while step < exp.last_step:
            batches = upcoming.result()
            next_start = (step // exp.steps_per_epoch + 1) * exp.steps_per_epoch
            if next_start < exp.last_step:
                upcoming = prefetcher.submit(started, epoch_batches(exp, next_start).as_numpy_iterator())
            for batch in batches:
                yield batch
            step = next_start


def _stop_reason(stop, checkpointer: Checkpointer, step: int) -> str | None:
    """The signal that asked the run to stop, or a multi-host preemption notice every host reached at `step`."""
    if stop.requested:
        return stop.signal_name
    if jax.process_count() > 1 and checkpointer.reached_preemption(step):
        return "preemption notice"
    return None


def _checkpoint_meta(exp: Experiment) -> dict:
    """What each checkpoint carries beside the state: the data position, class names and test protocol."""
    return {"steps_per_epoch": exp.steps_per_epoch, "global_batch": exp.global_batch,
            "class_names": exp.class_names, "protocol": protocol_of_clip(exp.clip)}


def _run_title(exp: Experiment) -> str:
    return f"{exp.model.attention_type} ({exp.config.dataset.name}/{exp.config.dataset.config})"


def _write_figures(exp: Experiment, workdir: Path, evaluation: EvalResult | None, step: int | None) -> None:
    """The run's PNGs, drawn once when it ends (never between steps): the curves from metrics.jsonl and the last
    evaluation's confusion matrix."""
    if not _is_main():
        return
    plot_curves(read_history(workdir), workdir / CURVES_FILE, _run_title(exp))
    if evaluation is not None:
        plot_eval_confusion(evaluation, exp.class_names, workdir / EVAL_DIR, step,
                            f"{exp.model.attention_type}: video confusion, step {step}")


def prepare_workdir(workdir: str | Path) -> Path:
    """`workdir` as an absolute path, created; WorkdirError (one line) when it cannot be a writable folder."""
    workdir = Path(workdir).absolute()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WorkdirError(f"--workdir {workdir} exists and is not a folder") from None
    except OSError as e:
        raise WorkdirError(f"cannot create --workdir {workdir}: {e.strerror or e}") from None
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise WorkdirError(f"--workdir {workdir} is not writable by this user")
    return workdir


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path,
                       log: Callable[[str], None] | None = None) -> RunSummary:
    """Train `config` in `workdir`, resuming from its latest checkpoint if there is one. Raises RunConfigError
    (touching nothing) when the workdir holds a run `config` cannot continue, WorkdirInUseError when another run
    holds the workdir, NonFiniteLossError (after keeping the last good checkpoint) when the loss, gradients or
    state stop being finite."""
    log = log or _print_on_main
    check_config(config)
    workdir = prepare_workdir(workdir)
    with workdir_lock(workdir, enabled=_is_main(), log=log):
        exp = _experiment_for_workdir(config, workdir, log)
        return _train(exp, workdir, log)


def _experiment_for_workdir(config: ml_collections.ConfigDict, workdir: Path, log) -> Experiment:
    """The experiment of `config` resolved against the workdir's stored run (RunConfigError when it cannot
    continue it), with the config recorded."""
    stored = read_stored_config(workdir)
    config = resolve_config(config, stored, log)
    changed = check_rerun(workdir, stored, config, has_checkpoints(checkpoint_dir(workdir)))
    exp = build_experiment(config)
    if changed:
        log(changed)
    if _is_main():
        record_config(workdir, stored, config)
    return exp


def _train(exp: Experiment, workdir: Path, log: Callable[[str], None]) -> RunSummary:
    """The step loop: train from the restored (or initial) state to the last step or a stop request, with the
    periodic actions written where they happen."""
    config = exp.config
    checkpointer = Checkpointer(checkpoint_dir(workdir), max_to_keep=config.checkpoint.keep, log=log)
    try:
        train_step, eval_step = _run_steps(exp, log)
        state, first_step = _restore_or_initialise(exp, checkpointer, log)
    except BaseException:
        checkpointer.close()
        raise
    log(f"{exp.model.attention_type}: {exp.num_examples(config.dataset.train_split)} training videos, "
        f"{exp.steps_per_epoch} steps of {exp.global_batch} clips per epoch, steps {first_step} -> "
        f"{exp.last_step} of {exp.total_steps}, mesh {dict(exp.mesh.shape)} over {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s) in {jax.process_count()} process(es)")
    writer = MetricWriter(workdir, resume_step=first_step, enabled=_is_main())
    progress = ProgressBar(exp.last_step, exp.global_batch, first_step=first_step, enabled=_is_main())
    pending, meta = PendingMetrics(), _checkpoint_meta(exp)

    def log_train(step):  # fetches and checks the pending metrics: NonFiniteLossError before anything is saved
        averaged = pending.drain()
        if averaged is not None:
            writer.write(step, "train", averaged)
            progress.update(step, loss=averaged["loss"], lr=averaged["learning_rate"])

    def save(step, state, evaluated):
        best = {BEST_METRIC: evaluated[BEST_METRIC]} if evaluated is not None else None
        checkpointer.save(step, state, meta, force=True, metrics=best)

    rule = plateau_rule(config)
    evaluations = [(r["step"], r[PLATEAU_METRIC]) for r in read_history(workdir)
                   if r["kind"] == "eval" and r["step"] <= first_step]
    plateau = find_plateau(evaluations, rule, exp.steps_per_epoch)
    if plateau is not None:
        log(f"the run had ended before: {plateau.text()}")
    step, stopped_by, failure, evaluation, evaluated_at = first_step, None, None, None, None
    started = time.perf_counter()
    # Signals are caught from the first step to the last save written, so a stop request during the final
    # evaluation or save also ends in a saved checkpoint and the "stopped by" line, never a killed process.
    with stop_on_signals() as stop:
        try:
            for batch in host_batches(exp, first_step) if plateau is None else ():
                state, metrics = train_step(state, global_batch(batch, exp.mesh))
                step += 1
                pending.add(step, metrics)
                stopped_by = _stop_reason(stop, checkpointer, step)
                due = due_actions(config, exp, step, stopping=stopped_by is not None)
                if due.log:
                    log_train(step)
                evaluated = None
                if due.evaluate:
                    progress.message(f"evaluating at step {step} ...")
                    result = run_evaluation(exp, state.params, eval_step, step, workdir / EVAL_DIR,
                                            progress.message, should_stop=lambda: stop.requested)
                    if result is not None:  # None: abandoned for a stop request
                        evaluation, evaluated_at, evaluated = result, step, result.metrics()
                        writer.write(step, "eval", evaluated)
                        evaluations.append((step, evaluated[PLATEAU_METRIC]))
                        plateau = find_plateau(evaluations, rule, exp.steps_per_epoch)
                    progress.restart_clock()
                if due.save:
                    save(step, state, evaluated)
                if stopped_by is None and stop.requested:  # the signal came during this step's evaluation or save:
                    stopped_by = stop.signal_name  # stop here, with the state saved
                    if not due.save:
                        log_train(step)
                        save(step, state, None)
                if stopped_by or plateau is not None:
                    break
        except NonFiniteLossError as e:
            failure = e
        finally:
            progress.close()
            try:
                checkpointer.wait()
                kept, best_step = checkpointer.latest_step(), checkpointer.best_step()
            finally:
                checkpointer.close()
                writer.close()
        stopped_by = stopped_by or stop.signal_name if failure is None else None
    _write_figures(exp, workdir, evaluation, evaluated_at)
    if failure is not None:
        raise NonFiniteLossError(
            f"training stopped: {failure}. Nothing was saved after it; the last good checkpoint is "
            + (f"step {kept} in {checkpointer.directory}" if kept is not None else "none (no save had happened yet)")
            + ". Lower optimizer.base_learning_rate, set optimizer.clip_grad_norm, or check the data; rerunning "
            "resumes from that checkpoint.") from None
    seconds = time.perf_counter() - started
    summary = RunSummary(
        workdir=str(workdir), attention_type=exp.model.attention_type, first_step=first_step, last_step=step,
        total_steps=exp.total_steps, seconds=seconds,
        clips_per_second=(step - first_step) * exp.global_batch / max(seconds, 1e-9), stopped_by=stopped_by,
        eval_metrics=evaluation.metrics() if evaluation is not None else None, best_step=best_step,
        plateau=dataclasses.asdict(plateau) if plateau is not None else None,
    )
    if _is_main():
        (workdir / "summary.json").write_text(json.dumps(dataclasses.asdict(summary), indent=2) + "\n")
    log(summary.text())
    return summary


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str | Path, step: int | str | None = None,
                        log: Callable[[str], None] | None = None) -> tuple[int, dict]:
    """Evaluate checkpoint `step` of `workdir` (None: the latest; "best": the best by video top-1). Reports go to
    workdir/eval_step<N>/. Returns (step, metrics)."""
    workdir = Path(workdir).absolute()
    log = log or _print_on_main
    exp = build_experiment(resolve_config(config, read_stored_config(workdir), log))
    checkpointer = Checkpointer(checkpoint_dir(workdir), log=log)
    restored = checkpointer.restore(exp.abstract, exp.shardings, step=checkpointer.step_for(step))
    checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}; train first (`timesformer train`)")
    state, _ = restored
    step = int(state.step)
    eval_step = make_eval_step(exp.model, exp.mesh, exp.shardings, step_config(exp), exp.rules)
    directory = workdir / f"eval_step{step}"
    result = run_evaluation(exp, state.params, eval_step, step, directory, log)
    if _is_main():
        plot_eval_confusion(result, exp.class_names, directory, step,
                            f"{exp.model.attention_type}: video confusion, step {step}")
    log(f"reports: {directory}")
    return step, result.metrics()
