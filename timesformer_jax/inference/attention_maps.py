"""Attention maps people can look at: the rollout (`inference.rollout`) of one test view of a video, drawn
over its frames as a PNG grid and an animated GIF (`timesformer attention`).

A map (T, H, W) over the patch grid becomes pixels by giving every pixel of patch (t, h, w) -- rows
h * p .. h * p + p - 1, columns w * p .. w * p + p - 1 of frame t -- that patch's value (`upsample_map`), so
no interpolation can move or transpose it. Each row of the grid is scaled to its own maximum (over all its
frames, so frames compare within a row).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from timesformer_jax.inference.rollout import AttentionRollout, attention_rollout


def upsample_map(attention_map: np.ndarray, patch_size: int) -> np.ndarray:
    """(T, H, W) per-patch values -> (T, H * p, W * p), each patch's value on its p x p pixels."""
    return np.repeat(np.repeat(np.asarray(attention_map), patch_size, axis=1), patch_size, axis=2)


def overlay(frames: np.ndarray, attention_map: np.ndarray, patch_size: int, alpha: float = 0.55,
            colormap: str = "inferno") -> np.ndarray:
    """frames (T, S_h, S_w, 3) uint8 and a map (T, S_h / p, S_w / p) -> (T, S_h, S_w, 3) uint8: the map,
    scaled to its maximum and coloured, blended over the frames."""
    import matplotlib

    pixels = upsample_map(attention_map, patch_size)
    if pixels.shape != frames.shape[:3]:
        raise ValueError(f"a map of {attention_map.shape} patches at patch size {patch_size} covers {pixels.shape} "
                         f"pixels; the frames are {frames.shape[:3]}")
    peak = float(pixels.max())
    scaled = pixels / peak if peak > 0 else pixels
    colours = matplotlib.colormaps[colormap](scaled)[..., :3] * 255.0
    return np.clip((1 - alpha) * frames.astype(np.float64) + alpha * colours, 0, 255).round().astype(np.uint8)


def plot_grid(frames: np.ndarray, rows: Sequence[tuple[str, np.ndarray]], patch_size: int,
              path: str | Path, title: str = "") -> Path:
    """A PNG: the frames in the top row, then one row per (name, map (T, H, W)) with the map overlaid."""
    from timesformer_jax.figures import pyplot, save_figure

    plt = pyplot()
    num_frames = len(frames)
    fig, axes = plt.subplots(len(rows) + 1, num_frames, figsize=(1.6 * num_frames, 1.7 * (len(rows) + 1)),
                             squeeze=False)
    images = [("frames", frames)] + [(name, overlay(frames, m, patch_size)) for name, m in rows]
    for r, (name, image) in enumerate(images):
        for t in range(num_frames):
            ax = axes[r, t]
            ax.imshow(image[t], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=8)
            if t == 0:
                ax.set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def write_gif(frames: np.ndarray, path: str | Path, frame_seconds: float = 0.4, scale: int = 1) -> Path:
    """An animated GIF of frames (T, H, W, 3) uint8, looping, each shown `frame_seconds`, enlarged `scale`x."""
    from PIL import Image

    if scale > 1:
        frames = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(frame_seconds * 1000), loop=0)
    return Path(path)


@dataclasses.dataclass
class AttentionPictures:
    rollout: AttentionRollout
    frames: np.ndarray  # (T, S, S, 3) uint8: the view the model saw, before normalisation
    grid_png: Path
    gif: Path
    top_label: str | None


def visualize_attention(checkpoint: str, video: str | Path, output: str | Path, *, num_heads: int | None = None,
                        per_block: bool = False, revision: str | None = None, labels_file: str | None = None,
                        log: Callable[[str], None] = print, **protocol) -> AttentionPictures:
    """`timesformer attention`: the rollout of the centre test view of `video` under `checkpoint` into
    `output`: `<stem>.attention.png` (frames, then the rollout; with `per_block`, the rollout after every
    block), `<stem>.attention.gif` (the overlay over time) and `<stem>.attention.npz` (maps (depth, T, H, W),
    the raw weights per block and stage, the frames)."""
    from timesformer_jax.inference.classify import protocol_for, protocol_line, read_views, softmax
    from timesformer_jax.inference.inputs import load_for_inference
    from timesformer_jax.inference.labels import resolve_labels

    # float32 always: the rollout multiplies depth x stages attention matrices
    model, _ = load_for_inference(checkpoint, dtype="float32", num_heads=num_heads, revision=revision)
    overrides = {k: v for k, v in protocol.items() if v is not None}
    config = protocol_for(model.module, getattr(model, "protocol", None),
                          **{**overrides, "num_temporal_views": 1, "num_spatial_crops": 1})
    log(protocol_line(model, config))
    warnings: list[str] = []
    clip = read_views(video, config, warnings)[0]  # (T, S, S, 3) normalised
    for warning in warnings:
        log(f"warning: {video}: {warning}")
    rollout = attention_rollout(model, clip)
    frames = np.clip((clip * np.asarray(config.std) + np.asarray(config.mean)) * 255.0, 0, 255).round().astype(np.uint8)
    top_label = None
    if model.module.num_classes:
        labels = resolve_labels(model.module.num_classes, model.class_names, labels_file, log)
        probs = softmax(np.asarray(model(clip[None]))[0])
        top_label = f"{labels[int(probs.argmax())]} ({probs.max():.2f})"
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    stem = Path(video).stem
    patch = model.module.patch_size
    rows = ([(f"after block {i}", m) for i, m in enumerate(rollout.maps)] if per_block
            else [("rollout", rollout.final_map)])
    title = f"{Path(video).name}: {model.module.attention_type} attention rollout" + (
        f"; predicted {top_label}" if top_label else "")
    grid_png = plot_grid(frames, rows, patch, output / f"{stem}.attention.png", title)
    gif = write_gif(overlay(frames, rollout.final_map, patch), output / f"{stem}.attention.gif",
                    scale=max(1, 256 // frames.shape[1]))
    arrays = {"maps": rollout.maps, "frames": frames}
    for b, block in enumerate(rollout.weights):
        for stage, weights in zip(model.module.scheme.stages, block):
            arrays[f"weights_block{b}_{stage.name}"] = weights
    np.savez_compressed(output / f"{stem}.attention.npz", **arrays)
    log(f"{video}: {model.module.attention_type}, map {rollout.final_map.shape} (T, H, W) patches, "
        f"{rollout.final_map.sum():.2f} of the readout's mass on patches"
        + (f", predicted {top_label}" if top_label else "") + f"\nwrote {grid_png}, {gif}, "
        f"{output / f'{stem}.attention.npz'}")
    return AttentionPictures(rollout, frames, grid_png, gif, top_label)
