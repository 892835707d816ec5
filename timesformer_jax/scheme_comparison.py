"""The demo: train the same small TimeSformer with several attention schemes on `synthetic_motion`, compare.

The interesting column is the reversal-paired classes: each is the time reversal of its partner, so a model
that cannot order frames (space-only attention) is at chance between the two; the still classes check
appearance. Used by `timesformer demo` (`make demo`).
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from timesformer_jax.data.synthetic_motion import REVERSAL_PAIRS


def read_confusion(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(class names, (C, C) counts) from a confusion_matrix.csv written by the evaluation."""
    rows = list(csv.reader(Path(path).open()))
    return rows[0][1:], np.array([[int(v) for v in row[1:]] for row in rows[1:]], np.int64)


def group_accuracies(class_names: Sequence[str], confusion: np.ndarray) -> dict[str, float]:
    """Video top-1 over all classes, over the reversal-paired classes, and over the other (still) classes;
    `pair_confusions`: the fraction of paired-class videos predicted as their time-reversed partner; `pairs`:
    top-1 over each pair's two classes ("move_right/move_left": ...), and `worst_pair` the lowest of them."""
    index = {name: i for i, name in enumerate(class_names)}
    paired = [index[n] for pair in REVERSAL_PAIRS for n in pair]
    still = [i for i in range(len(class_names)) if i not in paired]

    def top1(rows):
        total = confusion[rows].sum()
        return float(confusion[rows, rows].sum() / total) if total else float("nan")

    swapped = sum(confusion[index[a], index[b]] + confusion[index[b], index[a]] for a, b in REVERSAL_PAIRS)
    per_pair = {f"{a}/{b}": top1([index[a], index[b]]) for a, b in REVERSAL_PAIRS}
    return {
        "top1": top1(list(range(len(class_names)))),
        "reversal_pairs": top1(paired),
        "still": top1(still),
        "pair_confusions": float(swapped / max(confusion[paired].sum(), 1)),
        "worst_pair": min(per_pair.values()),
        "pairs": per_pair,
    }


def format_table(rows: Sequence[tuple[str, dict[str, float], float, float]]) -> str:
    """One row per scheme (name, accuracies, epochs trained, minutes): `<attention_type>  <top-1 %>  ...`, with a
    header line above."""
    lines = [f"{'attention_type':<20} {'top1':>6} {'reversal_pairs':>15} {'worst_pair':>10} {'still':>6} "
             f"{'pair_confusions':>16} {'epochs':>6} {'train_min':>9}"]
    for name, accuracies, epochs, minutes in rows:
        lines.append(f"{name:<20} {100 * accuracies['top1']:>6.1f} {100 * accuracies['reversal_pairs']:>15.1f} "
                     f"{100 * accuracies['worst_pair']:>10.1f} {100 * accuracies['still']:>6.1f} "
                     f"{100 * accuracies['pair_confusions']:>16.1f} {epochs:>6.1f} {minutes:>9.1f}")
    return "\n".join(lines)


def plot_comparison(histories: dict[str, list[dict]], path: str | Path) -> Path:
    """Eval video top-1 and train loss against step, one line per scheme."""
    from timesformer_jax.figures import pyplot, save_figure

    plt = pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in histories.items():
        train = [r for r in history if r["kind"] == "train"]
        evals = [r for r in history if r["kind"] == "eval"]
        loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label=name)
        acc_ax.plot([r["step"] for r in evals], [100 * r["video_top1"] for r in evals], "o-", label=name)
    loss_ax.set(xlabel="step", ylabel="train cross-entropy", title="training loss")
    acc_ax.set(xlabel="step", ylabel="%", ylim=(0, 100), title="test video top-1 (chance 10%)")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


STAMP_FILE = "demo_run.json"  # in each run's directory: what the run was trained with


def run_stamp(config, dataset_version: str) -> dict:
    """What decides a demo run's result: the package version, the dataset version and the config (less the
    dataset's location, so a moved workdir still matches)."""
    import json

    import timesformer_jax

    config_dict = json.loads(config.to_json_best_effort())
    config_dict.get("dataset", {}).pop("data_dir", None)
    return {"package_version": timesformer_jax.__version__, "dataset_version": dataset_version,
            "config": config_dict}


def stale_reason(run_dir: Path, stamp: dict) -> str | None:
    """Why the run in `run_dir` cannot stand for `stamp` (None: it can, or there is no run yet)."""
    import json

    from flax.traverse_util import flatten_dict

    if not (run_dir / "checkpoints").is_dir():
        return None
    stored_path = run_dir / STAMP_FILE
    if not stored_path.is_file():
        return "it has no record of the package version and config it was trained with"
    stored = json.loads(stored_path.read_text())
    for key, what in (("package_version", "timesformer_jax"), ("dataset_version", "synthetic_motion")):
        if stored.get(key) != stamp[key]:
            return f"it was trained with {what} {stored.get(key)}, this is {stamp[key]}"
    old, new = (flatten_dict(c, sep=".") for c in (stored.get("config", {}), stamp["config"]))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if changed:
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        return f"its config differs ({shown})"
    return None


def prepare_run_dir(run_dir: Path, stamp: dict, log: Callable[[str], None] = print) -> Path | None:
    """Make `run_dir` hold a run of `stamp` (or nothing yet): a run made otherwise is moved to
    `<run_dir's parent>/previous/<name>-<time>` (returned) and `stamp` is written for the new one."""
    import json
    import time

    reason = stale_reason(run_dir, stamp)
    kept = None
    if reason is not None:
        kept = run_dir.parent / "previous" / f"{run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        run_dir.rename(kept)
        log(f"{run_dir.name}: the run in {run_dir} is not this demo's ({reason}); training it again. The old "
            f"run is kept in {kept}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STAMP_FILE).write_text(json.dumps(stamp, indent=1) + "\n")
    return kept


class DemoStopped(RuntimeError):
    """A run was stopped by a signal before it finished: there is no table to show."""


@dataclasses.dataclass
class SchemeResult:
    """One scheme's demo run: its class-group accuracies (`group_accuracies`), eval curve and cost."""

    scheme: str
    seed: int
    accuracies: dict
    epochs: float  # epochs trained: where the plateau rule stopped the run, or the whole budget
    minutes: float  # wall time of this call (training and evaluation; seconds when a finished run is re-evaluated)
    history: list  # the run's metrics.jsonl records (train and eval)
    plateau: dict | None  # train.plateau.Plateau's fields, when the rule ended the run

    @property
    def eval_curve(self) -> list[tuple[int, float]]:
        """(step, video top-1) of every evaluation."""
        return [(r["step"], r["video_top1"]) for r in self.history if r["kind"] == "eval"]

    def row(self) -> tuple[str, dict, float, float]:
        return self.scheme, self.accuracies, self.epochs, self.minutes


def seed_dir(workdir: str | Path, seed: int) -> Path:
    """Where the runs of one seed go: `<workdir>/seed<N>` (one folder per scheme inside, and comparison.png)."""
    return Path(workdir) / f"seed{seed}"


def prepare_demo_data(workdir: Path, log: Callable[[str], None] = print):
    """The prepared synthetic_motion/demo builder under `workdir/tfds` (generated the first time)."""
    import time

    from timesformer_jax.data.builders import dataset_builder

    data_dir = workdir / "tfds"
    started = time.perf_counter()
    log(f"preparing synthetic_motion/demo in {data_dir} ...")
    builder = dataset_builder("synthetic_motion", str(data_dir), "demo")
    builder.download_and_prepare()
    log(f"dataset ready in {time.perf_counter() - started:.0f}s")
    return builder


def train_scheme(config, run_dir: Path, dataset_version: str, log: Callable[[str], None] = print) -> SchemeResult:
    """Train and evaluate `config` in `run_dir` (resuming what is there; a run made otherwise is set aside first,
    `prepare_run_dir`) and read its result. DemoStopped when a signal stopped the run."""
    import time

    from timesformer_jax.train.loop import EVAL_DIR, evaluate_checkpoint, train_and_evaluate
    from timesformer_jax.train.metric_writers import read_history

    scheme = config.model.attention_type
    prepare_run_dir(run_dir, run_stamp(config, dataset_version), log)
    started = time.perf_counter()
    summary = train_and_evaluate(config, run_dir, log=log)
    if summary.stopped_by:  # Ctrl-C or a kill: no table from a run cut short; the checkpoint is kept
        raise DemoStopped(f"{scheme} stopped by {summary.stopped_by} at step {summary.last_step} of "
                          f"{summary.total_steps}; run the same command again to resume it (no table printed)")
    if summary.eval_metrics is None:  # the run had already finished: evaluate its last checkpoint again
        log(f"{scheme}: finished earlier with this package version, dataset and config; evaluating its last "
            f"checkpoint again (delete {run_dir} to train it from scratch)")
        step, _ = evaluate_checkpoint(config, run_dir, log=log)
        confusion_csv = run_dir / f"eval_step{step}" / "confusion_matrix.csv"
    else:
        confusion_csv = run_dir / EVAL_DIR / "confusion_matrix.csv"
    steps_per_epoch = summary.total_steps / config.optimizer.epochs
    return SchemeResult(scheme=scheme, seed=config.seed, accuracies=group_accuracies(*read_confusion(confusion_csv)),
                        epochs=summary.last_step / steps_per_epoch, minutes=(time.perf_counter() - started) / 60,
                        history=read_history(run_dir), plateau=summary.plateau)


def run_demo(get_config: Callable[[str], object], schemes: Sequence[str], workdir: str | Path, seed: int = 0,
             log: Callable[[str], None] = print) -> str:
    """Prepare synthetic_motion/demo under workdir/tfds, train and evaluate each scheme with `seed` (model init
    and data order) in workdir/seed<N>/<scheme> (resuming what is there), write workdir/seed<N>/comparison.png;
    returns the table.

    A run made with another package version, dataset version or config is never resumed or reported: it is
    moved to workdir/seed<N>/previous/<scheme>-<time> (nothing is deleted) and the scheme is trained again."""
    workdir = Path(workdir).absolute()
    builder = prepare_demo_data(workdir, log)
    runs_dir = seed_dir(workdir, seed)
    results = []
    for scheme in schemes:
        config = get_config(scheme)
        config.dataset.data_dir = str(workdir / "tfds")
        config.seed = seed
        results.append(train_scheme(config, runs_dir / scheme, str(builder.version), log))
    histories = {result.scheme: result.history for result in results}
    log(f"curves: {plot_comparison(histories, runs_dir / 'comparison.png')}; per run: {runs_dir}/<scheme>/"
        "curves.png and <scheme>/eval/confusion_matrix.png")
    return f"seed {seed}\n" + format_table([r.row() for r in results])
