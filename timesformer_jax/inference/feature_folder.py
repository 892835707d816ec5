"""`extract_features` (`timesformer features`): a folder of per-video feature files that a rerun completes
and keeps up to date: a result is reused only when its settings and its video file are unchanged."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np

from timesformer_jax.atomic_write import write_atomically
from timesformer_jax.data.video_io import VideoReadError
from timesformer_jax.inference.classify import protocol_line, softmax
from timesformer_jax.inference.features import FeatureExtractor
from timesformer_jax.inference.inputs import load_for_inference, named_video_files, no_videos_error
from timesformer_jax.inference.labels import resolve_labels
from timesformer_jax.inference.timeline import plot_timeline, timeline_tsv
from timesformer_jax.protocol import protocol_of_clip
from timesformer_jax.user_files import printable, read_json_object


INDEX_FILE = "index.json"


def extract_features(checkpoint: str, inputs: Sequence[str | Path], output: str | Path, *,
                     num_heads: int | None = None, dtype: str = "auto", layer: str = "pre_logits",
                     pool: str = "cls", stride_seconds: float | None = None, batch_size: int = 8,
                     labels_file: str | None = None, plot: bool = False, revision: str | None = None,
                     log: Callable[[str], None] = print, **protocol) -> dict:
    """`timesformer features`: features of every video of `inputs` into `output`.

    Per video `<name>.npz` (window_start_seconds, window_end_seconds (N,), frame_indices (N, T), features
    (N, D), embedding (D,), logits (N, C) for classifiers, fps, num_frames, layer, settings) and, for
    classifiers, `<name>.timeline.tsv` (and `<name>.timeline.png` with `plot`). `<name>` is the video's file
    name, or its path inside a folder given (`a/b.mp4` -> `a__b.mp4`; see `inputs.named_video_files`).
    `index.json` lists every video with its output (and `warnings` when it read only in part) or its error; it is
    rewritten after each video. Rerunning skips a video whose `.npz` exists and was computed with the same
    settings (weights, layer, pooling, window protocol, dtype; `extraction_settings`) from the same file (size
    and modification time), and recomputes it otherwise (a video's files are written whole or not at all); a
    file that cannot be read is reported and skipped, the others go on. Returns the index."""
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
