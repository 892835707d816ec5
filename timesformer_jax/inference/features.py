"""Features and action timelines for videos of any length: the model's clip window slid over the whole video.

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
from __future__ import annotations

import dataclasses
import io
import json
import re
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from timesformer_jax.data.sampling import dense_clip_size, sliding_window_starts, spaced_indices
from timesformer_jax.data.video_io import FrameStream, VideoReadError, probe_video
from timesformer_jax.inference.classify import protocol_line, softmax
from timesformer_jax.protocol import protocol_of_clip
from timesformer_jax.user_files import printable

POOLS = ("cls", "mean")
MAX_WINDOWS = 200_000  # per video: a whole day at 0.5 s strides; more is a mistyped stride
_BLOCK_LAYER = re.compile(r"block_(\d+)$")


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """Where the windows of one video lie. starts: (N,) first source frame (float); indices: (N, T) sampled
    frames; ends: (N,) one past the last frame the window spans (clipped to the video)."""

    video_length: int
    fps: float
    starts: np.ndarray
    ends: np.ndarray
    indices: np.ndarray

    @property
    def num_windows(self) -> int:
        return len(self.starts)

    @property
    def start_seconds(self) -> np.ndarray:
        return self.starts / self.fps

    @property
    def end_seconds(self) -> np.ndarray:
        return self.ends / self.fps


def plan_windows(video_length: int, fps: float, num_frames: int, sampling_rate: int,
                 stride_seconds: float | None = None, target_fps: float = 30.0) -> WindowPlan:
    """The sliding windows over a video of `video_length` frames at `fps` (0: unknown, taken as `target_fps`).
    stride_seconds None: half a window."""
    fps = fps or target_fps
    clip_size = dense_clip_size(num_frames, sampling_rate, fps, target_fps)
    stride = clip_size / 2 if stride_seconds is None else stride_seconds * fps
    if stride < 1 - 1e-9:
        raise ValueError(f"stride_seconds must be at least one frame of the video (1/{fps:g} fps = {1 / fps:.4g} s; "
                         f"closer windows repeat the same frames), got {stride_seconds}")
    count = 1 + max(0, int((video_length - clip_size) // stride))
    if count > MAX_WINDOWS:
        raise ValueError(f"stride_seconds={stride_seconds} gives {count} windows over {video_length} frames, more "
                         f"than {MAX_WINDOWS}; use a longer stride")
    starts = sliding_window_starts(video_length, clip_size, stride)
    indices = np.stack([spaced_indices(s, clip_size, num_frames, video_length) for s in starts])
    return WindowPlan(video_length, float(fps), starts, np.minimum(starts + clip_size, video_length), indices)


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

        from timesformer_jax.inference.classify import protocol_for

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
            features = inter[f"blocks_{self.block}"]["cls"][0].reshape(batch, -1, module.hidden_size).mean(axis=1)
        else:
            features = inter[f"blocks_{self.block}"]["tokens"][0].reshape(batch, -1, module.hidden_size).mean(axis=1)
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
        import tensorflow as tf

        from timesformer_jax.data.pipeline import eval_crops
        from timesformer_jax.data.transforms import resize_short_side

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
            buffered[index] = resize_short_side(tf.constant(frame[None]), self.config.crop_size,
                                                self.config.antialias)[0].numpy()
            peak = max(peak, len(buffered))
            while next_window < plan.num_windows and last_needed[next_window] <= index:
                frames = np.stack([buffered[i] for i in plan.indices[next_window]])
                batch.append(np.asarray(eval_crops(tf.constant(frames), self.config)[0]))
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


INDEX_FILE = "index.json"


def extract_features(checkpoint: str, inputs: Sequence[str | Path], output: str | Path, *,
                     num_heads: int | None = None, dtype: str = "auto", layer: str = "pre_logits",
                     pool: str = "cls", stride_seconds: float | None = None, batch_size: int = 8,
                     labels_file: str | None = None, plot: bool = False, revision: str | None = None,
                     log: Callable[[str], None] = print, **protocol) -> dict:
    """`tools/extract_features.py`: features of every video of `inputs` into `output`.

    Per video `<name>.npz` (window_start_seconds, window_end_seconds (N,), frame_indices (N, T), features
    (N, D), embedding (D,), logits (N, C) for classifiers, fps, num_frames, layer, settings) and, for
    classifiers, `<name>.timeline.tsv` (and `<name>.timeline.png` with `plot`). `<name>` is the video's file
    name, or its path inside a folder given (`a/b.mp4` -> `a__b.mp4`; see `inputs.named_video_files`).
    `index.json` lists every video with its output (and `warnings` when it read only in part) or its error; it is
    rewritten after each video. Rerunning skips a video whose `.npz` exists and was computed with the same
    settings (weights, layer, pooling, window protocol, dtype; `extraction_settings`) from the same file (size
    and modification time), and recomputes it otherwise (a video's files are written whole or not at all); a
    file that cannot be read is reported and skipped, the others go on. Returns the index."""
    import jax

    from timesformer_jax.inference.inputs import load_for_inference, named_video_files, no_videos_error
    from timesformer_jax.inference.labels import resolve_labels
    from timesformer_jax.integrity import write_atomically
    from timesformer_jax.user_files import read_json_object

    videos = named_video_files(inputs)
    if not videos:
        raise no_videos_error(inputs)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    index_path = output / INDEX_FILE
    index = {"videos": {}}
    if index_path.is_file():
        try:
            index = read_json_object(index_path, "the index of a feature extraction")
        except ValueError as e:
            log(f"warning: {e}; starting a new index (every video is computed again)")
        if not isinstance(index.get("videos"), dict):
            index = {"videos": {}}
    model, dtype = load_for_inference(checkpoint, dtype=dtype, num_heads=num_heads, revision=revision)
    extractor = FeatureExtractor(model, layer, pool, stride_seconds, batch_size,
                                 **{k: v for k, v in protocol.items() if v is not None})
    labels = (resolve_labels(model.module.num_classes, model.class_names, labels_file, log)
              if model.module.num_classes else None)
    config = extractor.config
    log(f"{model.module.attention_type}, {dtype} on {jax.default_backend()}: windows of {config.num_frames} x "
        f"{config.crop_size}^2 frames, rate {config.sampling_rate} at {config.target_fps:g} fps, stride "
        + (f"{stride_seconds:g} s" if stride_seconds is not None else "half a window")
        + f", layer {extractor.layer_name}, {len(videos)} video(s) -> {output}")
    log(protocol_line(model, config))
    settings = extraction_settings(model, checkpoint, extractor, stride_seconds, dtype)
    done = skipped = failed = 0
    for position, (path, name) in enumerate(videos, 1):
        npz = output / f"{name}.npz"
        shown = printable(path)
        previous = index["videos"].get(name, {})
        try:
            source = video_fingerprint(path)
        except OSError:
            source = None
        if npz.is_file() and previous.get("settings") == settings and previous.get("source") == source:
            skipped += 1
            continue
        if npz.is_file():
            changed = sorted(k for k in settings if (previous.get("settings") or {}).get(k) != settings[k])
            if previous.get("source") != source:
                changed.append("the video file")
            log(f"[{position}/{len(videos)}] {shown}: recomputing ({', '.join(changed)} changed since {npz.name} "
                "was written)")
        try:
            result = extractor.extract(path)
        except Exception as e:  # noqa: BLE001 - one file's failure, whatever it is, is that file's error entry
            failed += 1
            message = str(e) if isinstance(e, VideoReadError) else f"{shown}: {type(e).__name__}: {e}"
            index["videos"][name] = {"video": shown, "error": message}
            log(f"[{position}/{len(videos)}] {shown}: error: {message} (skipped)")
        else:
            if labels is not None:
                write_atomically(output / f"{name}.timeline.tsv", timeline_tsv(result, labels).encode())
                if plot:
                    plot_timeline(result, labels, output / f"{name}.timeline.png")
            write_atomically(npz, result.to_npz_bytes(settings))  # last: its presence marks the video done
            done += 1
            entry = {"video": shown, "output": npz.name, "num_windows": result.plan.num_windows,
                     "seconds": round(result.seconds, 3), "settings": settings, "source": source}
            if result.warnings:
                entry["warnings"] = result.warnings
            if labels is not None:
                top = int(softmax(result.logits.mean(axis=0)).argmax())
                entry["top_label"] = labels[top]
            index["videos"][name] = entry
            log(f"[{position}/{len(videos)}] {shown}: {result.plan.num_windows} windows of "
                f"{result.plan.video_length / result.plan.fps:.1f} s in {result.seconds:.1f} s"
                + (f", mostly {entry['top_label']}" if labels is not None else "")
                + "".join(f"\n  warning: {warning}" for warning in result.warnings))
        index["last_run"] = {"videos": len(videos), "done": done, "reused": skipped, "failed": failed}
        write_atomically(index_path, (json.dumps(index, indent=1) + "\n").encode())
    log(f"{done} video(s) done, {skipped} already done before with the same settings, {failed} failed; "
        f"index: {index_path}")
    return index


def video_fingerprint(path: Path) -> dict:
    """What identifies the version of a video file a result was computed from: its size and modification time."""
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def params_fingerprint(params) -> str:
    """SHA-256 over every parameter's name, shape, dtype and bytes: the same weights give the same digest
    wherever they were loaded from."""
    import hashlib

    import jax

    digest = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(params)[0], key=lambda item: str(item[0])):
        array = np.asarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def extraction_settings(model, checkpoint, extractor: FeatureExtractor, stride_seconds, dtype: str) -> dict:
    """Everything that decides a video's features: the weights, the layer and pooling, the window protocol and
    the compute dtype. A stored result is reused only when these are all equal."""
    config = extractor.config
    window = {k: v for k, v in protocol_of_clip(config).items() if k not in ("spatial_crops", "temporal_views")}
    return {"checkpoint": str(checkpoint), "weights_sha256": params_fingerprint(model.params),
            "layer": extractor.layer_name, "stride_seconds": stride_seconds, **window, "dtype": dtype}


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
