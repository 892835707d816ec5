"""An action timeline: each window's top class, as a TSV and (optionally) a plot of the top classes over time."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from timesformer_jax.inference.classify import softmax
from timesformer_jax.inference.features import VideoFeatures


def timeline_tsv(result: VideoFeatures, labels: Sequence[str]) -> str:
    """start_s, end_s, label, probability: one line per window."""
    lines = ["start_s\tend_s\tlabel\tprobability"]
    lines += [f"{s:.3f}\t{e:.3f}\t{labels[c]}\t{p:.4f}" for s, e, c, p in result.timeline()]
    return "\n".join(lines) + "\n"


def plot_timeline(result: VideoFeatures, labels: Sequence[str], path: str | Path, top: int = 5) -> Path:
    """The softmax probability of the `top` classes (by their mean over the windows) against window centre."""
    from timesformer_jax.figures import pyplot, save_figure

    probs = softmax(result.logits)
    best = np.argsort(-probs.mean(axis=0), kind="stable")[:top]
    centres = (result.plan.start_seconds + result.plan.end_seconds) / 2
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for c in best:
        ax.plot(centres, probs[:, c], "o-" if len(centres) < 40 else "-", label=labels[c], markersize=3)
    ax.set(xlabel="time (s, window centre)", ylabel="probability", ylim=(0, 1), title=Path(result.video).name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)
