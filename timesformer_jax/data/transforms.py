"""TensorFlow versions of the clip sampling rules and the spatial transforms, for use inside tf.data.

The sampling functions mirror `sampling.py` (NumPy, the documented reference) op for op; the tests check they
agree. The spatial transforms follow the official (PySlowFast) ones:

* train: shorter side resized to round(uniform(min_scale, max_scale)) (bilinear, half-pixel
  centres as torch's `interpolate(align_corners=False)`), a random `crop_size` square, a horizontal flip with
  probability 1/2 (off for datasets whose labels name directions, e.g. SSv2);
* test: shorter side resized to `crop_size`, then one of three `crop_size` squares along the longer side
  (0: start, 1: centre rounded up, 2: end), `uniform_crop` in the official code.

Randomness is stateless: every random choice is a function of a per-example seed, so a pipeline is
deterministic for a given seed however many threads run it.
"""
from __future__ import annotations

import tensorflow as tf

from timesformer_jax.data.sampling import TARGET_FPS


def dense_indices(video_length, num_frames: int, sampling_rate: int, position, fps, target_fps: float = TARGET_FPS):
    """As `sampling.dense_indices`, in TF: (num_frames,) int32 indices."""
    length = tf.cast(video_length, tf.float64)
    fps = tf.cast(fps, tf.float64)
    fps = tf.where(fps > 0, fps, tf.constant(target_fps, tf.float64))
    clip_size = num_frames * sampling_rate * fps / target_fps
    start = tf.cast(position, tf.float64) * tf.maximum(length - clip_size, 0.0)
    index = tf.linspace(start, start + clip_size - 1, num_frames)
    return tf.cast(tf.clip_by_value(index, 0.0, length - 1), tf.int32)


def segment_indices(video_length, num_frames: int, offsets=None):
    """As `sampling.segment_indices`, in TF (tf.round rounds half to even, like np.round)."""
    segment = (tf.cast(video_length, tf.float64) - 1) / num_frames
    steps = tf.range(num_frames + 1, dtype=tf.float64)
    bounds = tf.cast(tf.round(segment * steps), tf.int32)
    starts, ends = bounds[:-1], bounds[1:]
    if offsets is None:
        return (starts + ends) // 2
    choices = tf.cast(ends - starts + 1, tf.float64)
    pick = tf.minimum(tf.cast(tf.floor(tf.cast(offsets, tf.float64) * choices), tf.int32), ends - starts)
    return starts + pick


def short_side_size(height, width, short_side):
    """(new_height, new_width) int32 with the shorter side equal to `short_side`, aspect kept; the longer side is
    floor(longer / shorter * short_side), the official arithmetic."""
    height, width, short_side = (tf.cast(x, tf.float64) for x in (height, width, short_side))
    new_h = tf.where(width < height, tf.floor(height / width * short_side), short_side)
    new_w = tf.where(width < height, short_side, tf.floor(width / height * short_side))
    return tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)


def resize_short_side(frames, short_side):
    """frames (T, H, W, 3) -> float32 (T, H', W', 3) with min(H', W') == short_side (bilinear, half-pixel)."""
    shape = tf.shape(frames)
    size = short_side_size(shape[1], shape[2], short_side)
    return tf.image.resize(tf.cast(frames, tf.float32), tf.stack(size), method="bilinear", antialias=False)


def random_train_crop(frames, seed, crop_size: int, min_scale: int, max_scale: int, flip: bool):
    """Scale jitter, random crop and random flip of frames (T, H, W, 3) -> float32 (T, crop, crop, 3).

    seed: shape (2,) int tensor, the example's stateless seed.
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    # int(round(uniform(min, max))) as the official jitter draws it.
    scale = tf.cast(tf.round(tf.random.stateless_uniform([], seeds[0], min_scale, max_scale, dtype=tf.float64)), tf.int32)
    frames = resize_short_side(frames, scale)
    shape = tf.shape(frames)
    top = tf.random.stateless_uniform([], seeds[1], 0, shape[1] - crop_size + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, shape[2] - crop_size + 1, dtype=tf.int32)
    frames = frames[:, top : top + crop_size, left : left + crop_size]
    if flip:
        coin = tf.random.stateless_uniform([], seeds[3]) < 0.5
        frames = tf.cond(coin, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
    return tf.ensure_shape(frames, [None, crop_size, crop_size, 3])


def uniform_crop(frames, crop_size: int, spatial_index):
    """The official test crop: frames (T, H, W, 3) with min(H, W) == crop_size -> (T, crop, crop, 3); index 0, 1
    or 2 takes the start, centre or end of the longer side."""
    shape = tf.shape(frames)
    height, width = shape[1], shape[2]
    y = (height - crop_size + 1) // 2  # ceil((H - crop) / 2)
    x = (width - crop_size + 1) // 2
    along_height = height > width
    y = tf.where(along_height & (spatial_index == 0), 0, y)
    y = tf.where(along_height & (spatial_index == 2), height - crop_size, y)
    x = tf.where(~along_height & (spatial_index == 0), 0, x)
    x = tf.where(~along_height & (spatial_index == 2), width - crop_size, x)
    return tf.ensure_shape(frames[:, y : y + crop_size, x : x + crop_size], [None, crop_size, crop_size, 3])


def normalise(frames, mean, std):
    """uint8-range float frames -> (frames / 255 - mean) / std."""
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return (frames / 255.0 - mean) / std
