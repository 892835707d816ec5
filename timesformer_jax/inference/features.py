"""Features of videos of any length: the model's clip window slid over the whole video (`windows.py` places
the windows; `feature_folder.py` writes a folder of results; `timeline.py` the per-window top classes).

A window is one dense clip of the test protocol (`protocol_for`: `num_frames` frames `sampling_rate` apart at
30 fps, scaled to the file's rate; the shorter side resized to the crop size, the centre crop, normalised).
Windows start every `stride_seconds` (default: half a window) from the first frame, as long as the window fits
in the video; a video shorter than one window gets one window whose clip repeats its last frame, as the
official sampling does (`data.sampling.sliding_window_starts`, `spaced_indices`).

The file is decoded once, from the start, in order (`data.video_io.FrameStream`): only frames some window
samples are converted and resized, and each is dropped as soon as no later window needs it, so memory holds
the frames of the windows that overlap the decode position (a few windows' worth, `peak_frames_held`), however
long the video is. Windows go through one jitted forward in batches of `batch_size` (the last one padded).

Per window: the start and end time, the sampled frame indices, the features (`pre_logits`, the final norm of the
cls token, by default; or block N's output: its cls token, or the mean of its patch tokens) and, for a
classifier, the logits. A whole-video embedding is the mean of the window features; a timeline is each window's
top class.
"""

import dataclasses
import io
import json
import re
import time
from pathlib import Path

import numpy as np

from timesformer_jax.data.video_io import FrameStream, probe_video
from timesformer_jax.inference.classify import protocol_for, softmax
from timesformer_jax.inference.windows import WindowPlan, plan_windows
from timesformer_jax.model.block_layout import block_outputs
from timesformer_jax.user_files import printable

POOLS = ("cls", "mean")
_BLOCK_LAYER = re.compile(r"block_(\d+)$")


def parse_layer(layer: str, depth: int) -> int | None:
    """None for "pre_logits", N for "block_N" (0-based, as the parameters `blocks_N`); ValueError otherwise."""
    if layer == "pre_logits":
        return None
    match = _BLOCK_LAYER.match(layer)
    if not match or int(match.group(1)) >= depth:
        raise ValueError(f"layer must be 'pre_logits' or 'block_N' with 0 <= N < {depth} (the model's depth), "
                         f"got {layer!r}")
    return int(match.group(1))


@dataclasses.dataclass
class VideoFeatures:
    """One video's windows. features: (N, D); logits: (N, C) or None (a model without a head)."""

    video: str
    layer: str
    plan: WindowPlan
    features: np.ndarray
    logits: np.ndarray | None
    peak_frames_held: int = 0  # decoded frames buffered at once, at most
    seconds: float = 0.0
    warnings: list[str] = dataclasses.field(default_factory=list)  # what fell short of a clean read

    @property
    def embedding(self) -> np.ndarray:
        """(D,) the whole video: the mean of the window features."""
        return self.features.mean(axis=0)

    def timeline(self) -> list[tuple[float, float, int, float]]:
        """Per window (start s, end s, top class index, its softmax probability); [] without logits."""
        if self.logits is None:
            return []
        probs = softmax(self.logits)
        top = probs.argmax(axis=1)
        return [(float(s), float(e), int(c), float(probs[i, c]))
                for i, (s, e, c) in enumerate(zip(self.plan.start_seconds, self.plan.end_seconds, top))]

    def to_npz_bytes(self, settings: dict | None = None) -> bytes:
        """The arrays of `extract_features`' per-video file; `settings` (what produced them) as a JSON string."""
        arrays = dict(
            window_start_seconds=self.plan.start_seconds, window_end_seconds=self.plan.end_seconds,
            frame_indices=self.plan.indices, features=self.features, embedding=self.embedding,
            fps=np.float64(self.plan.fps), num_frames=np.int64(self.plan.video_length), layer=np.str_(self.layer),
        )
        if self.logits is not None:
            arrays["logits"] = self.logits
        if settings is not None:
            arrays["settings"] = np.str_(json.dumps(settings, sort_keys=True))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()


class FeatureExtractor:
    """Slides `model` (a `PretrainedTimeSformer`) over videos. layer: "pre_logits" or "block_N"; pool (blocks
    only): "cls" (the block's cls token) or "mean" (its patch tokens averaged). `protocol`: `ClipConfig`
    overrides (`sampling_rate`, `antialias`, ...); one view per window, the centre crop."""

    def __init__(self, model, layer: str = "pre_logits", pool: str = "cls", stride_seconds: float | None = None,
                 batch_size: int = 8, **protocol):
        import jax

        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if stride_seconds is not None and not stride_seconds > 0:
            raise ValueError(f"stride_seconds must be positive, got {stride_seconds}")
        self.model, self.layer, self.pool = model, layer, pool
        self.block = parse_layer(layer, model.module.depth)
        self.stride_seconds, self.batch_size = stride_seconds, batch_size
        self.config = protocol_for(model.module, getattr(model, "protocol", None),
                                   **{**protocol, "num_temporal_views": 1, "num_spatial_crops": 1})
        if self.config.sampling != "dense":
            raise ValueError("sliding windows need dense sampling (a clip spans a fixed time)")
        self._forward = jax.jit(self._features_and_logits)

    def _features_and_logits(self, params, video):
        """video (B, T, S, S, 3) -> (features (B, D) float32, logits (B, C) float32)."""
        import jax.numpy as jnp

        module = self.model.module
        logits, state = module.apply({"params": params}, video, mutable="intermediates")
        inter = state["intermediates"]
        batch = video.shape[0]
        if self.block is None:
            features = inter["pre_logits"][0]
        elif self.pool == "cls":  # space-only keeps one cls token per frame: average them, as its head does
            features = block_outputs(inter, self.block)["cls"][0].reshape(batch, -1, module.hidden_size).mean(axis=1)
        else:
            features = block_outputs(inter, self.block)["tokens"][0].reshape(batch, -1, module.hidden_size).mean(axis=1)
        return jnp.asarray(features, jnp.float32), logits

    def plan(self, video_length: int, fps: float) -> WindowPlan:
        return plan_windows(video_length, fps, self.config.num_frames, self.config.sampling_rate,
                            self.stride_seconds, self.config.target_fps)

    def extract(self, path: str | Path) -> VideoFeatures:
        """The windows of one file. VideoReadError when it cannot be read."""
        started = time.perf_counter()
        info = probe_video(path)
        size = (info.height, info.width)
        plan = self.plan(info.num_frames, info.fps)
        features, logits, report, peak = self._run(path, plan, size)
        if report.frames != info.num_frames:
            # The header's frame count was wrong (a file cut short, a corrupt section skipped): plan again for the
            # frames there are.
            plan = self.plan(report.frames, info.fps)
            features, logits, _, peak = self._run(path, plan, size)
        return VideoFeatures(printable(path), self.layer_name, plan, features,
                             logits if self.model.module.num_classes else None, peak,
                             time.perf_counter() - started, report.problems(info.num_frames))

    @property
    def layer_name(self) -> str:
        """What the features are: "pre_logits", or "block_N:cls" / "block_N:mean"."""
        return self.layer if self.block is None else f"{self.layer}:{self.pool}"

    def _run(self, path, plan: WindowPlan, size: tuple[int, int] | None = None):
        """One decoding pass: (features (N, D), logits (N, C), the pass's `DecodeReport` (frames in the file, ...),
        peak frames buffered). Windows the file turns out too short for are left out (the caller plans again)."""
        from timesformer_jax.data.eval_views import crops, resize_short_side

        wanted = set(plan.indices.ravel().tolist())
        last_needed = plan.indices.max(axis=1)  # non-decreasing: windows are in start order
        buffered: dict[int, np.ndarray] = {}
        batch: list[np.ndarray] = []
        features, logits = [], []
        next_window, peak = 0, 0

        def run_batch():
            clips = np.stack(batch + [np.zeros_like(batch[0])] * (self.batch_size - len(batch)))
            f, l = self._forward(self.model.params, clips.astype(self.model.module.dtype))
            features.append(np.asarray(f)[: len(batch)])
            logits.append(np.asarray(l, np.float32)[: len(batch)])
            batch.clear()

        stream = FrameStream(path, wanted, size)
        for index, frame in stream:
            buffered[index] = resize_short_side(frame[None], self.config.crop_size, self.config.antialias)[0]
            peak = max(peak, len(buffered))
            while next_window < plan.num_windows and last_needed[next_window] <= index:
                frames = np.stack([buffered[i] for i in plan.indices[next_window]])
                batch.append(crops(frames, self.config)[0])
                next_window += 1
                if len(batch) == self.batch_size:
                    run_batch()
                if next_window < plan.num_windows:  # frames no later window samples are done with
                    first_needed = plan.indices[next_window].min()
                    for i in [i for i in buffered if i < first_needed]:
                        del buffered[i]
        if batch:
            run_batch()
        if not features:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), stream.report, peak
        return np.concatenate(features), np.concatenate(logits), stream.report, peak
