"""PNG figures: training curves (from the metrics history) and the confusion matrix, and the two helpers every
figure of the package uses (the benchmark's Figure 3, the demo's comparison).

matplotlib runs with the non-interactive Agg backend, so plots work on headless machines.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` as a PNG to `path` and free it (pyplot keeps every open figure alive otherwise)."""
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_curves(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Loss (train; eval when logged) and accuracy (train clips, eval clips and videos) against step."""
    plt = pyplot()
    train = [r for r in history if r["kind"] == "train"]
    evals = [r for r in history if r["kind"] == "eval"]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        loss_ax.plot(steps, [r["loss"] for r in train], label="train loss")
        acc_ax.plot(steps, [100 * r["accuracy"] for r in train], label="train clip top-1", alpha=0.7)
    if evals:
        steps = [r["step"] for r in evals]
        loss_ax.plot(steps, [r["loss"] for r in evals], "o-", label="eval loss")
        acc_ax.plot(steps, [100 * r["clip_top1"] for r in evals], "s-", label="eval clip top-1")
        acc_ax.plot(steps, [100 * r["video_top1"] for r in evals], "o-", label="eval video top-1")
    loss_ax.set(xlabel="step", ylabel="cross-entropy", title="loss")
    acc_ax.set(xlabel="step", ylabel="%", title="accuracy", ylim=(0, 100))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # nothing logged yet (a run stopped at its first steps): no legend
            ax.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """confusion: (C, C) counts, rows = true class, columns = predicted; drawn row-normalised."""
    plt = pyplot()
    num_classes = len(class_names)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = min(max(4.0, 0.45 * num_classes + 2), 30)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    if num_classes <= 50:  # beyond that, labels are unreadable: the CSV holds them
        ax.set_xticks(range(num_classes), class_names, rotation=90, fontsize=7)
        ax.set_yticks(range(num_classes), class_names, fontsize=7)
        if num_classes <= 20:
            for i in range(num_classes):
                for j in range(num_classes):
                    if confusion[i, j]:
                        ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if rates[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (videos)")
    fig.tight_layout()
    return save_figure(fig, path)
