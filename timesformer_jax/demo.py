"""The demo: train the same small TimeSformer with several attention schemes on `synthetic_motion`, compare.

The interesting column is the reversal-paired classes: each is the time reversal of its partner, so a model
that cannot order frames (space-only attention) is at chance between the two; the still classes check
appearance. Used by `tools/demo.py` (`make demo`).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from timesformer_jax.data.synthetic_motion import REVERSAL_PAIRS


def read_confusion(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(class names, (C, C) counts) from a confusion_matrix.csv written by the evaluation."""
    rows = list(csv.reader(Path(path).open()))
    return rows[0][1:], np.array([[int(v) for v in row[1:]] for row in rows[1:]], np.int64)


def group_accuracies(class_names: Sequence[str], confusion: np.ndarray) -> dict[str, float]:
    """Video top-1 over all classes, over the reversal-paired classes, and over the other (still) classes; and
    `pair_confusions`: the fraction of paired-class videos predicted as their time-reversed partner."""
    index = {name: i for i, name in enumerate(class_names)}
    paired = [index[n] for pair in REVERSAL_PAIRS for n in pair]
    still = [i for i in range(len(class_names)) if i not in paired]

    def top1(rows):
        total = confusion[rows].sum()
        return float(confusion[rows, rows].sum() / total) if total else float("nan")

    swapped = sum(confusion[index[a], index[b]] + confusion[index[b], index[a]] for a, b in REVERSAL_PAIRS)
    return {
        "top1": top1(list(range(len(class_names)))),
        "reversal_pairs": top1(paired),
        "still": top1(still),
        "pair_confusions": float(swapped / max(confusion[paired].sum(), 1)),
    }


def format_table(rows: Sequence[tuple[str, dict[str, float], float]]) -> str:
    """One row per scheme: `<attention_type>  <top-1 %>  ...`, with a header line above."""
    lines = [f"{'attention_type':<20} {'top1':>6} {'reversal_pairs':>15} {'still':>6} {'pair_confusions':>16} "
             f"{'train_min':>9}"]
    for name, accuracies, minutes in rows:
        lines.append(f"{name:<20} {100 * accuracies['top1']:>6.1f} {100 * accuracies['reversal_pairs']:>15.1f} "
                     f"{100 * accuracies['still']:>6.1f} {100 * accuracies['pair_confusions']:>16.1f} "
                     f"{minutes:>9.1f}")
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


def run_demo(get_config: Callable[[str], object], schemes: Sequence[str], workdir: str | Path,
             log: Callable[[str], None] = print) -> str:
    """Prepare synthetic_motion/demo under workdir/tfds, train and evaluate each scheme in workdir/<scheme>
    (resuming what is there), write workdir/comparison.png; returns the table."""
    import time

    from timesformer_jax.data.builders import dataset_builder
    from timesformer_jax.train.loop import EVAL_DIR, evaluate_checkpoint, train_and_evaluate
    from timesformer_jax.train.metric_writers import read_history

    workdir = Path(workdir).absolute()
    data_dir = workdir / "tfds"
    started = time.perf_counter()
    log(f"preparing synthetic_motion/demo in {data_dir} ...")
    dataset_builder("synthetic_motion", str(data_dir), "demo").download_and_prepare()
    log(f"dataset ready in {time.perf_counter() - started:.0f}s")
    rows, histories = [], {}
    for scheme in schemes:
        config = get_config(scheme)
        config.dataset.data_dir = str(data_dir)
        run_dir = workdir / scheme
        started = time.perf_counter()
        summary = train_and_evaluate(config, run_dir, log=log)
        if summary.eval_metrics is None:  # the run had already finished: evaluate its last checkpoint again
            step, _ = evaluate_checkpoint(config, run_dir, log=log)
            confusion_csv = run_dir / f"eval_step{step}" / "confusion_matrix.csv"
        else:
            confusion_csv = run_dir / EVAL_DIR / "confusion_matrix.csv"
        names, confusion = read_confusion(confusion_csv)
        rows.append((scheme, group_accuracies(names, confusion), (time.perf_counter() - started) / 60))
        histories[scheme] = read_history(run_dir)
    log(f"curves: {plot_comparison(histories, workdir / 'comparison.png')}; per run: <scheme>/curves.png, "
        f"<scheme>/eval/confusion_matrix.png")
    return format_table(rows)
