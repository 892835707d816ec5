"""The official test views in NumPy, for inference without TensorFlow.

The same rules as the eval pipeline (`data.pipeline.eval_view_indices` / `eval_view_clips`, in TensorFlow inside
tf.data): frame indices from `sampling` (the NumPy reference the TensorFlow sampling mirrors), the shorter side
resized to the crop size (bilinear with half-pixel centres, `torch.nn.functional.interpolate(align_corners=False)`
as the official test transform computes it; or antialiased, as `tf.image.resize(antialias=True)`), 1 centre or 3
crops along the longer side, and normalisation. `tests/test_eval_views.py` ties both implementations together on
decoded video frames.
"""
from __future__ import annotations

import numpy as np

from timesformer_jax.data.clip_config import ClipConfig
from timesformer_jax.data.sampling import dense_indices, segment_indices, temporal_view_positions


def view_indices(config: ClipConfig, length: int, fps: float) -> np.ndarray:
    """(num_temporal_views, num_frames) int64 frame indices of the test views of a video of `length` frames at
    `fps`: dense clips at view / num_views of the span, or segment middles (evenly spread offsets for several
    views)."""
    nt, t = config.num_temporal_views, config.num_frames
    if config.sampling == "dense":
        fps = fps if fps > 0 else config.target_fps
        return np.stack([dense_indices(length, t, config.sampling_rate, p, fps, config.target_fps)
                         for p in temporal_view_positions(nt)])
    if nt == 1:
        return segment_indices(length, t)[None]
    return np.stack([segment_indices(length, t, np.full(t, (v + 0.5) / nt)) for v in range(nt)])


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(new_height, new_width) with the shorter side `short_side`, the longer floor(longer / shorter *
    short_side): the official arithmetic."""
    if width < height:
        return int(np.floor(height / width * short_side)), short_side
    return short_side, int(np.floor(width / height * short_side))


def _taps(size: int, new_size: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Resampling one axis of length `size` to `new_size`: (source indices (new_size, K) int, weights
    (new_size, K) float32), each output the weighted sum of its K source samples.

    Plain: the two neighbours of the source coordinate (i + 0.5) * size / new_size - 0.5 clamped to [0, size - 1],
    as `transforms.resized_coordinates`. Antialiased (on a downscale): a triangle kernel widened by the scale,
    weights normalised over the samples inside the axis, as TensorFlow's ScaleAndTranslate computes
    `tf.image.resize(method="bilinear", antialias=True)`."""
    scale = new_size / size
    if not antialias or scale >= 1:
        # float64 coordinates rounded to float32 before the split, as the compiled TensorFlow resampler does
        at = np.clip((np.arange(new_size) + 0.5) * size / new_size - 0.5, 0.0, size - 1).astype(np.float32)
        low = np.floor(at).astype(np.int64)
        frac = at - low.astype(np.float32)
        return np.stack([low, np.minimum(low + 1, size - 1)], 1), np.stack([1 - frac, frac], 1)
    width = 1 / scale  # the kernel's half-width in source pixels
    centre = (np.arange(new_size) + 0.5) / scale
    first = np.ceil(centre - width - 0.5).astype(np.int64)
    count = int(np.ceil(2 * width)) + 1
    index = first[:, None] + np.arange(count)[None]
    weight = np.maximum(0.0, 1 - np.abs((index + 0.5 - centre[:, None]) / width))
    weight = np.where((index >= 0) & (index < size), weight, 0.0)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.clip(index, 0, size - 1), weight.astype(np.float32)


def _resample_axis(frame: np.ndarray, axis: int, new_size: int, antialias: bool) -> np.ndarray:
    """One frame (H, W, C), uint8 or float, resampled along `axis` (0: rows, 1: columns) -> float32. Only the
    gathered samples are converted to float32, never the whole source frame."""
    index, weight = _taps(frame.shape[axis], new_size, antialias)
    shape = [1] * frame.ndim
    shape[axis] = new_size
    if index.shape[1] == 2 and (not antialias or frame.shape[axis] <= new_size):
        # a + (b - a) * t, the order of operations of the compiled TensorFlow resampler
        a = np.take(frame, index[:, 0], axis=axis).astype(np.float32)
        b = np.take(frame, index[:, 1], axis=axis).astype(np.float32)
        return a + (b - a) * weight[:, 1].reshape(shape)
    out = np.zeros(frame.shape[:axis] + (new_size,) + frame.shape[axis + 1:], np.float32)
    for k in range(index.shape[1]):
        out += np.take(frame, index[:, k], axis=axis).astype(np.float32) * weight[:, k].reshape(shape)
    return out


def resize_short_side(frames, short_side: int, antialias: bool = False) -> np.ndarray:
    """Frames ((T, H, W, 3) array or a sequence of (H, W, 3) frames, uint8 or float) -> (T, H', W', 3) float32
    with min(H', W') == short_side: rows, then columns, bilinear with half-pixel centres (antialiased on
    downscales when `antialias`). Frame by frame: memory holds one source frame's resampled rows at a time."""
    resized = []
    for frame in frames:
        new_h, new_w = short_side_size(frame.shape[0], frame.shape[1], short_side)
        resized.append(_resample_axis(_resample_axis(frame, 0, new_h, antialias), 1, new_w, antialias))
    return np.stack(resized)


def uniform_crop(frames: np.ndarray, crop_size: int, spatial_index: int) -> np.ndarray:
    """The official test crop of frames (T, H, W, C) with min(H, W) == crop_size -> (T, crop, crop, C): index 0, 1
    or 2 takes the start, centre (rounded up) or end of the longer side."""
    height, width = frames.shape[1:3]
    y, x = (height - crop_size + 1) // 2, (width - crop_size + 1) // 2
    if spatial_index != 1:
        if height > width:
            y = 0 if spatial_index == 0 else height - crop_size
        else:
            x = 0 if spatial_index == 0 else width - crop_size
    return frames[:, y : y + crop_size, x : x + crop_size]


def normalise(frames: np.ndarray, mean, std) -> np.ndarray:
    """uint8-range frames -> (frames / 255 - mean) / std, float32."""
    return (np.asarray(frames, np.float32) / np.float32(255.0) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def crops(frames: np.ndarray, config: ClipConfig) -> np.ndarray:
    """Frames already resized (shorter side = crop size), (num_temporal_views * T, H, W, 3) in view order ->
    (num_views, T, crop, crop, 3) float32 normalised, view = temporal_view * num_spatial_crops + spatial_crop."""
    nt, t = config.num_temporal_views, config.num_frames
    frames = normalise(frames, config.mean, config.std)
    spatial = [1] if config.num_spatial_crops == 1 else [0, 1, 2]
    return np.stack([uniform_crop(frames[v * t : (v + 1) * t], config.crop_size, s) for v in range(nt) for s in spatial])


def view_clips(frames, config: ClipConfig) -> np.ndarray:
    """The test views from the frames `view_indices` named, in its order (uint8 (nt * T, H, W, 3), or a sequence
    of (H, W, 3) frames) -> (num_views, T, crop, crop, 3) float32 normalised."""
    return crops(resize_short_side(frames, config.crop_size, config.antialias), config)
