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

from timesformer_jax.data.sampling import INTEGER_TOLERANCE, TARGET_FPS


def dense_indices(video_length, num_frames: int, sampling_rate: int, position, fps, target_fps: float = TARGET_FPS):
    """As `sampling.dense_indices`, in TF: (num_frames,) int32 indices."""
    length = tf.cast(video_length, tf.float64)
    fps = tf.cast(fps, tf.float64)
    fps = tf.where(fps > 0, fps, tf.constant(target_fps, tf.float64))
    clip_size = num_frames * sampling_rate * fps / target_fps
    start = tf.cast(position, tf.float64) * tf.maximum(length - clip_size, 0.0)
    index = tf.linspace(start, start + clip_size - 1, num_frames)
    return tf.cast(tf.floor(tf.clip_by_value(index, 0.0, length - 1) + INTEGER_TOLERANCE), tf.int32)


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


def resize_short_side(frames, short_side, antialias: bool = False):
    """frames (T, H, W, 3) -> float32 (T, H', W', 3) with min(H', W') == short_side (bilinear, half-pixel).

    Without antialiasing this is what the official test transform computes (`torch.nn.functional.interpolate(
    mode="bilinear", align_corners=False)`); `antialias=True` widens the kernel on downscales (torch's
    `antialias=True`), which at large downscales changes the pixels, and a model's logits, substantially."""
    shape = tf.shape(frames)
    size = short_side_size(shape[1], shape[2], short_side)
    return tf.image.resize(tf.cast(frames, tf.float32), tf.stack(size), method="bilinear", antialias=antialias)


def train_crop_geometry(height, width, seed, crop_size: int, min_scale: int, max_scale: int):
    """Where the random training crop of a (height, width) frame lies, without touching pixels.

    The crop is the official one -- shorter side resized to round(uniform(min_scale, max_scale)), then a random
    crop_size square of the resized frame -- expressed in source pixels, so that only the pixels under it need
    decoding and resampling. Returns (window, box, flip):
      window: int32 [top, left, rows, cols] of source pixels the crop reads (for `decode_and_crop_jpeg`);
      box: float32 [y1, x1, y2, x2] normalised to the window (for `tf.image.crop_and_resize`), placing the
           crop_size samples exactly where bilinear resizing with half-pixel centres would take them;
      flip: bool scalar, a fair coin for the horizontal flip.
    seed: shape (2,) int tensor, the example's stateless seed.
    """
    seeds = tf.random.experimental.stateless_split(seed, 4)
    # int(round(uniform(min, max))) as the official jitter draws it.
    scale = tf.cast(tf.round(tf.random.stateless_uniform([], seeds[0], min_scale, max_scale, dtype=tf.float64)), tf.int32)
    new_h, new_w = short_side_size(height, width, scale)
    top = tf.random.stateless_uniform([], seeds[1], 0, new_h - crop_size + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, new_w - crop_size + 1, dtype=tf.int32)
    flip = tf.random.stateless_uniform([], seeds[3]) < 0.5

    def axis(offset, size, new_size):
        # Sample i of the resized frame sits at source coordinate (i + 0.5) * size / new_size - 0.5, clamped to the
        # frame as the resize clamps it.
        size_f = tf.cast(size, tf.float64)
        step = size_f / tf.cast(new_size, tf.float64)
        first = tf.clip_by_value((tf.cast(offset, tf.float64) + 0.5) * step - 0.5, 0.0, size_f - 1)
        last = tf.clip_by_value((tf.cast(offset + crop_size, tf.float64) - 0.5) * step - 0.5, 0.0, size_f - 1)
        start = tf.cast(tf.floor(first), tf.int32)
        extent = tf.cast(tf.math.ceil(last), tf.int32) - start + 1
        span = tf.cast(tf.maximum(extent - 1, 1), tf.float64)
        return start, extent, (first - tf.cast(start, tf.float64)) / span, (last - tf.cast(start, tf.float64)) / span

    y0, rows, y1, y2 = axis(top, height, new_h)
    x0, cols, x1, x2 = axis(left, width, new_w)
    window = tf.stack([y0, x0, rows, cols])
    box = tf.cast(tf.stack([y1, x1, y2, x2]), tf.float32)
    return window, box, flip


def crop_window_and_resample(window_frames, box, flip, crop_size: int):
    """Frames (T, rows, cols, 3) of a crop window -> float32 (T, crop, crop, 3) sampled at `box`, maybe flipped."""
    count = tf.shape(window_frames)[0]
    frames = tf.image.crop_and_resize(
        window_frames, tf.tile(box[None], [count, 1]), tf.range(count), [crop_size, crop_size], method="bilinear"
    )
    frames = tf.cond(flip, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
    return tf.ensure_shape(frames, [None, crop_size, crop_size, 3])


def random_train_crop(frames, seed, crop_size: int, min_scale: int, max_scale: int, flip: bool):
    """Scale jitter, random crop and random flip of decoded frames (T, H, W, 3) -> float32 (T, crop, crop, 3).

    The pipeline does the same from JPEG bytes, decoding only the window (`train_crop_geometry`).
    """
    shape = tf.shape(frames)
    window, box, coin = train_crop_geometry(shape[1], shape[2], seed, crop_size, min_scale, max_scale)
    window_frames = frames[:, window[0] : window[0] + window[2], window[1] : window[1] + window[3]]
    return crop_window_and_resample(window_frames, box, coin & flip, crop_size)


def each_frame(decode, jpegs):
    """tf.stack([decode(j) for j in jpegs]) of a (T,) string tensor -> uint8 (T, ...): unrolled when T is
    known when tracing (a clip's frame count always is), which costs less per clip than `tf.map_fn`'s loop."""
    count = jpegs.shape[0]
    if count is None:
        return tf.map_fn(decode, jpegs, fn_output_signature=tf.uint8)
    return tf.stack([decode(jpegs[i]) for i in range(count)])


def random_train_crop_jpeg(jpegs, seed, crop_size: int, min_scale: int, max_scale: int, flip: bool):
    """`random_train_crop` straight from JPEG bytes (T,) of equal-sized frames: decodes only the crop window."""
    height_width = tf.image.extract_jpeg_shape(jpegs[0])[:2]
    window, box, coin = train_crop_geometry(height_width[0], height_width[1], seed, crop_size, min_scale, max_scale)
    window_frames = each_frame(
        lambda data: tf.io.decode_and_crop_jpeg(data, window, channels=3, dct_method="INTEGER_FAST"), jpegs)
    return crop_window_and_resample(window_frames, box, coin & flip, crop_size)


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
