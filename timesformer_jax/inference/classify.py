"""Video files in, labelled top-k out, with the official test protocol.

For each file: read the frame count and rate from the container, compute the test views' frame indices with
the rules the eval pipeline uses (`data.eval_views`, the NumPy twin of `data.pipeline.eval_view_indices`: `num_temporal_views` dense clips at
view / num_views of the span, the sampling rate defined at 30 fps and scaled to the file's rate), decode only
those frames at full resolution (`data.video_io.read_frames` seeks), resize the shorter side to the crop size
and take `num_spatial_crops` crops along the longer side (`eval_views.view_clips`), normalise, and run every view
through one jitted forward. Views' logits are averaged (`aggregate="logits"`, the score is the softmax of
the mean) or their probabilities are (`"softmax"`).

A file that cannot be read gives a `Prediction` with `error` set; the other files of the call go on. A file that
reads only in part (a corrupt section skipped, fewer frames than its header says, a mid-stream size change) is
classified from what decodes, with `warnings` saying so.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from timesformer_jax.data.video_io import (
    DecodeReport,
    FrameStream,
    VideoReadError,
    count_frames,
    probe_video,
    read_frames,
)
from timesformer_jax.protocol import PROTOCOL_KEYS, clip_fields, describe, model_protocol, protocol_of_clip
from timesformer_jax.user_files import printable

AGGREGATES = ("logits", "softmax")


@dataclasses.dataclass
class Prediction:
    """One video's result: per-view logits (V, C), their mean (C,), the aggregate scores (C,) and the top-k
    (index, label, score); or `error` for a file that could not be classified."""

    video: str
    view_logits: np.ndarray | None = None
    logits: np.ndarray | None = None
    scores: np.ndarray | None = None
    top_k: list[tuple[int, str, float]] = dataclasses.field(default_factory=list)
    error: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)  # what fell short of a clean read
    decode_seconds: float = 0.0
    model_seconds: float = 0.0

    def to_json(self) -> dict:
        """`{"video", "logits", "top_k": [{"index", "label", "score"}]}` (with `"warnings"` when the file did not
        read cleanly), or `{"video", "error"}`."""
        if self.error is not None:
            return {"video": self.video, "error": self.error}
        out = {"video": self.video, "logits": [float(x) for x in self.logits],
               "top_k": [{"index": i, "label": label, "score": score} for i, label, score in self.top_k]}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def protocol_for(module, protocol: dict | None = None, **overrides):
    """The test protocol for `module` (a `TimeSformer`) as a `ClipConfig`: `protocol` (a checkpoint's, keys of
    `timesformer_jax.protocol.PROTOCOL_KEYS`), else the official Kinetics-400 test (8 x 32 dense sampling at 30
    fps, 1 x 3 views, mean/std 0.45/0.225), with the module's frames and crop size; `overrides` are `ClipConfig`
    fields (`sampling_rate`, `num_temporal_views`, `num_spatial_crops`, `antialias`, ...)."""
    from timesformer_jax.data.clip_config import ClipConfig

    grid_h, grid_w = module.config_grid
    if grid_h != grid_w:
        raise ValueError(f"the test protocol crops squares; the model is configured for {module.image_size}")
    fields = {**clip_fields(model_protocol(module.num_frames, grid_h * module.patch_size, protocol)), **overrides}
    fields.setdefault("train_scale", (fields["crop_size"], max(fields["crop_size"], 320)))
    return ClipConfig(**fields)


def protocol_line(model, config) -> str:
    """One line for the logs: the protocol `config` (a `ClipConfig`) and where it came from (`model`'s checkpoint,
    or the official default), with the fields that differ from the checkpoint's (command-line overrides)."""
    recorded = getattr(model, "protocol", None)
    used = protocol_of_clip(config)
    base = protocol_of_clip(protocol_for(model.module, recorded))
    changed = [key for key in PROTOCOL_KEYS if used[key] != base[key]]
    origin = "the checkpoint's" if recorded else "the official one (the checkpoint records none)"
    return (f"test protocol: {describe(used)} -- {origin}"
            + (f", with {', '.join(changed)} overridden" if changed else ""))


def read_views(path: str | Path, config, warnings: list[str] | None = None) -> np.ndarray:
    """The test views of one file: (num_views, T, crop, crop, 3) float32, normalised (whatever `config.dtype`
    says: a "uint8" protocol, the training configs' setting, is normalised here too). Frames are read as
    displayed, at the first frame's size. VideoReadError when the file cannot be read; what fell short of a clean
    read (frames missing against the header, corrupt packets, a mid-stream size change) is appended to
    `warnings`."""
    from timesformer_jax.data.eval_views import view_clips, view_indices

    info = probe_video(path)
    size = (info.height, info.width)
    indices = view_indices(config, info.num_frames, info.fps).reshape(-1)
    report = DecodeReport()
    frames = read_frames(path, indices, info.fps, size, report)
    problems = report.problems()
    if any(int(i) not in frames for i in indices):
        # The header promised frames the file does not yield (cut short, or a corrupt section): count what
        # decodes, converting nothing, sample the views from those, as the official loader does when it decodes
        # the whole video, and read them in a second pass. Memory holds the views' frames only.
        report = count_frames(path)
        indices = view_indices(config, report.frames, info.fps).reshape(-1)
        stream = FrameStream(path, set(indices.tolist()), size)
        frames = dict(stream)
        problems = report.problems(info.num_frames) + [f"views sampled from the {report.frames} frames that decode"]
        problems += [p for p in stream.report.problems() if "resolution" in p]
    if warnings is not None and problems:
        warnings.append("; ".join(problems))
    return view_clips([frames[int(i)] for i in indices], config)  # the decoded frames, not copies


def aggregate_views(view_logits: np.ndarray, aggregate: str = "logits") -> tuple[np.ndarray, np.ndarray]:
    """(mean logits (C,), scores (C,)) of views' logits (V, C): the softmax of the mean (`logits`) or the mean
    of the views' softmax (`softmax`)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    view_logits = np.asarray(view_logits, np.float64)
    mean = view_logits.mean(axis=0)
    if aggregate == "logits":
        return mean, softmax(mean)
    return mean, softmax(view_logits).mean(axis=0)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_k(scores: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[int, str, float]]:
    """The `k` best (index, label, score), best first (ties: lower index first)."""
    order = np.argsort(-scores, kind="stable")[: min(k, len(scores))]
    return [(int(i), labels[i], float(scores[i])) for i in order]


def classify(model, videos: str | Path | Iterable[str | Path], config=None, *, aggregate: str = "logits",
             k: int = 5, labels: Sequence[str] | None = None, batch_size: int | None = None,
             progress: Callable[[int, Prediction], None] | None = None) -> list[Prediction]:
    """Classify video files with `model` (a `PretrainedTimeSformer`).

    config: a `ClipConfig` (default `protocol_for(model.module, model.protocol)`: the checkpoint's protocol).
    labels: names of the classes (default: the model's own, else their indices). batch_size: clips per forward
    (default: one video's views); views of several videos share a batch when it is larger, and the last batch is
    padded, so every call runs one compiled shape. `progress(i, prediction)` after each file, in order, once its result is known.
    """
    paths = [videos] if isinstance(videos, (str, Path)) else list(videos)
    config = config or protocol_for(model.module, getattr(model, "protocol", None))
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    num_classes = model.module.num_classes
    if num_classes == 0:
        raise ValueError("the model has no classifier head (num_classes=0): nothing to classify")
    labels = list(labels or model.class_names or [str(i) for i in range(num_classes)])
    if len(labels) != num_classes:
        raise ValueError(f"expected one label per class of the model ({num_classes}), got {len(labels)} labels")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer (clips per forward pass), got {batch_size!r}")
    if k < 1:
        raise ValueError(f"k (labels per video) must be at least 1, got {k}")
    batch_size = batch_size or config.num_views
    predictions: list[Prediction] = []
    pending: list[tuple[Prediction, np.ndarray]] = []  # decoded, waiting for a full batch of clips

    def finish(prediction: Prediction, view_logits: np.ndarray, seconds: float) -> None:
        prediction.view_logits, prediction.model_seconds = view_logits, seconds
        prediction.logits, prediction.scores = aggregate_views(view_logits, aggregate)
        prediction.top_k = top_k(prediction.scores, labels, k)

    def flush() -> None:
        # Every pending video's views through the model in batches of exactly `batch_size` clips.
        if not pending:
            return
        started = time.perf_counter()
        logits = _forward_in_batches(model, np.concatenate([views for _, views in pending]), batch_size)
        seconds = (time.perf_counter() - started) / len(pending)
        offset = 0
        for prediction, views in pending:
            finish(prediction, logits[offset : offset + len(views)], seconds)
            offset += len(views)
        pending.clear()

    done = 0
    for position, path in enumerate(paths):
        prediction = Prediction(video=printable(path))
        predictions.append(prediction)
        try:
            started = time.perf_counter()
            views = read_views(path, config, prediction.warnings)
            prediction.decode_seconds = time.perf_counter() - started
            pending.append((prediction, views))
        except Exception as e:  # noqa: BLE001 - one file's failure, whatever it is, is that file's error entry
            prediction.error = str(e) or type(e).__name__
            if not isinstance(e, VideoReadError):
                prediction.error = f"{printable(path)}: {type(e).__name__}: {prediction.error}"
        if sum(len(v) for _, v in pending) >= batch_size or position == len(paths) - 1:
            flush()
            for finished in predictions[done:]:
                if progress is not None:
                    progress(done + 1, finished)
                done += 1
    return predictions


def _forward_in_batches(model, views: np.ndarray, batch_size: int) -> np.ndarray:
    """views (V, T, S, S, 3) -> logits (V, C), in batches of exactly `batch_size` clips (the last one padded)."""
    out = []
    for start in range(0, len(views), batch_size):
        chunk = views[start : start + batch_size]
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:], chunk.dtype)])
        out.append(np.asarray(model(padded))[: len(chunk)])
    return np.concatenate(out)
