"""Multi-view evaluation: clip and video top-1/top-5, per-class accuracy and the confusion matrix.

Every test video is seen as `num_temporal_views x num_spatial_crops` clips (`data.pipeline.eval_dataset`).
Clip metrics score each view alone; video metrics first combine a video's views. The official test sums the
views' logits (`aggregation="logits"`); `"softmax"` averages probabilities instead. Each host scores its own
videos and the counts are summed over hosts, so the result is the same on one host or many.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Iterable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from timesformer_jax.parallel import global_batch
from timesformer_jax.parallel.rules import batch_sharding

AGGREGATIONS = ("logits", "softmax")


@dataclasses.dataclass
class EvalCounts:
    """Sums over views / videos; adding two hosts' counts gives the counts of both."""

    num_classes: int
    clip_count: int = 0
    clip_top1: int = 0
    clip_top5: int = 0
    clip_loss_sum: float = 0.0
    video_top5: int = 0
    confusion: np.ndarray = None  # (C, C) videos, rows = true class, columns = predicted

    def __post_init__(self):
        if self.confusion is None:
            self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def to_vector(self) -> np.ndarray:
        head = [self.clip_count, self.clip_top1, self.clip_top5, self.clip_loss_sum, self.video_top5]
        return np.concatenate([np.asarray(head, np.float64), self.confusion.ravel().astype(np.float64)])

    @classmethod
    def from_vector(cls, vector: np.ndarray, num_classes: int) -> "EvalCounts":
        c, t1, t5, loss, v5 = vector[:5]
        confusion = np.rint(vector[5:]).astype(np.int64).reshape(num_classes, num_classes)
        return cls(num_classes, int(round(c)), int(round(t1)), int(round(t5)), float(loss), int(round(v5)), confusion)


@dataclasses.dataclass
class EvalResult:
    counts: EvalCounts

    @property
    def num_videos(self) -> int:
        return int(self.counts.confusion.sum())

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """(C,) video top-1 per true class; NaN for classes without test videos."""
        totals = self.counts.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, np.diag(self.counts.confusion) / totals, np.nan)

    def metrics(self) -> dict[str, float]:
        c = self.counts
        clips, videos = max(c.clip_count, 1), max(self.num_videos, 1)
        per_class = self.per_class_accuracy
        return {
            "loss": c.clip_loss_sum / clips,
            "clip_top1": c.clip_top1 / clips,
            "clip_top5": c.clip_top5 / clips,
            "video_top1": float(np.trace(c.confusion)) / videos,
            "video_top5": c.video_top5 / videos,
            "mean_class_accuracy": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else 0.0,
        }


def _top_k_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[-1])
    top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=-1)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def count_predictions(logits: np.ndarray, labels: np.ndarray, example_index: np.ndarray, num_classes: int,
                      aggregation: str = "logits") -> EvalCounts:
    """Counts for one host's views. logits: (N, C) float; labels, example_index: (N,) int (padding removed).
    Views with the same `example_index` belong to one video."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    logits = np.asarray(logits, np.float64)
    log_probs = _log_softmax(logits)
    counts = EvalCounts(num_classes)
    counts.clip_count = len(labels)
    counts.clip_top1 = int(_top_k_hits(logits, labels, 1).sum())
    counts.clip_top5 = int(_top_k_hits(logits, labels, 5).sum())
    counts.clip_loss_sum = float(-log_probs[np.arange(len(labels)), labels].sum())
    videos, position = np.unique(example_index, return_inverse=True)
    per_view = logits if aggregation == "logits" else np.exp(log_probs)
    video_scores = np.zeros((len(videos), num_classes))
    np.add.at(video_scores, position, per_view)
    video_labels = np.zeros(len(videos), np.int64)
    video_labels[position] = labels
    counts.video_top5 = int(_top_k_hits(video_scores, video_labels, 5).sum())
    np.add.at(counts.confusion, (video_labels, video_scores.argmax(axis=-1)), 1)
    return counts


def sum_over_hosts(counts: EvalCounts) -> EvalCounts:
    if jax.process_count() == 1:
        return counts
    gathered = multihost_utils.process_allgather(counts.to_vector())
    return EvalCounts.from_vector(np.asarray(gathered).sum(axis=0), counts.num_classes)


def evaluate(eval_step, params, batches: Iterable[dict], mesh, num_classes: int, aggregation: str = "logits",
             progress=None, should_stop=None) -> EvalResult | None:
    """Run `eval_step(params, video) -> logits` over host batches from `eval_dataset` and score them.
    `progress(i)` is called after each batch; when `should_stop()` turns true after one (a signal, one process
    only: every host must run every batch), the evaluation is abandoned and None returned."""
    sharding = batch_sharding(mesh)
    logits, labels, example_index = [], [], []
    for i, batch in enumerate(batches):
        video = global_batch({"video": batch["video"]}, mesh)["video"]
        out = eval_step(params, video)
        local = multihost_utils.global_array_to_host_local_array(out, mesh, sharding.spec)
        keep = np.asarray(batch["mask"]).astype(bool)
        logits.append(np.asarray(local)[keep])
        labels.append(np.asarray(batch["label"])[keep])
        example_index.append(np.asarray(batch["example_index"])[keep])
        if progress is not None:
            progress(i + 1)
        if should_stop is not None and should_stop():
            return None
    if logits:
        counts = count_predictions(np.concatenate(logits), np.concatenate(labels), np.concatenate(example_index),
                                   num_classes, aggregation)
    else:
        counts = EvalCounts(num_classes)
    return EvalResult(sum_over_hosts(counts))


def write_eval_reports(result: EvalResult, class_names: Sequence[str], directory: str | Path, step: int) -> Path:
    """directory/{metrics.json, per_class_accuracy.csv, confusion_matrix.csv}: the tables (`plot_eval_confusion`
    draws the figure)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metrics = result.metrics()
    (directory / "metrics.json").write_text(json.dumps({"step": step, "num_videos": result.num_videos, **metrics},
                                                       indent=2) + "\n")
    totals = result.counts.confusion.sum(axis=1)
    with (directory / "per_class_accuracy.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "videos", "top1"])
        for name, total, accuracy in zip(class_names, totals, result.per_class_accuracy):
            writer.writerow([name, int(total), "" if np.isnan(accuracy) else f"{accuracy:.6f}"])
    with (directory / "confusion_matrix.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, result.counts.confusion):
            writer.writerow([name, *map(int, row)])
    return directory


def plot_eval_confusion(result: EvalResult, class_names: Sequence[str], directory: str | Path, step: int,
                        title: str = "") -> Path:
    """directory/confusion_matrix.png of `result`'s video confusion matrix."""
    from timesformer_jax.figures import plot_confusion

    path = Path(directory) / "confusion_matrix.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_confusion(result.counts.confusion, class_names, path, title or f"confusion matrix (videos), step {step}")
    return path
