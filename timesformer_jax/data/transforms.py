"""TensorFlow versions of the clip sampling rules and the spatial transforms, for use inside tf.data.

The sampling functions mirror `sampling.py` (NumPy, the documented reference) op for op; the tests check they
agree. The spatial transforms follow the official (PySlowFast) ones:

* train: shorter side resized to round(uniform(min_scale, max_scale)) (bilinear, half-pixel
  centres as torch's `interpolate(align_corners=False)`), a random `crop_size` square, a horizontal flip with
  probability 1/2 (off for datasets whose labels name directions, e.g. SSv2);
* test: shorter side resized to `crop_size`, then one of three `crop_size` squares along the longer side
  (0: start, 1: centre rounded up, 2: end), `uniform_crop` in the official code.

Both resamples are one rule, `bilinear_samples`: bilinear samples at the source coordinates a resize with
half-pixel centres would use (`resized_coordinates`), so the train crop samples only its window and never the
rest of the resized frame. It is compiled with XLA (TensorFlow's, on the CPU): about 3x faster than
`tf.image.crop_and_resize` and 1.3x faster than `tf.image.resize` on one core. Pipelines that yield uint8 get the
rounding fused into it too.

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


def resize_short_side(frames, short_side, antialias: bool = False, dtype=tf.float32):
    """frames (T, H, W, 3) -> (T, H', W', 3) with min(H', W') == short_side (bilinear, half-pixel), float32, or
    for dtype uint8 rounded to the nearest level (`round_to_uint8`).

    Without antialiasing this is what the official test transform computes (`torch.nn.functional.interpolate(
    mode="bilinear", align_corners=False)`), by `bilinear_samples`; `antialias=True` widens the kernel on
    downscales (torch's `antialias=True`), which at large downscales changes the pixels, and a model's logits,
    substantially."""
    shape = tf.shape(frames)
    new_h, new_w = short_side_size(shape[1], shape[2], short_side)
    if antialias:
        resized = tf.image.resize(tf.cast(frames, tf.float32), tf.stack([new_h, new_w]), method="bilinear",
                                  antialias=True)
        return round_to_uint8(resized) if tf.as_dtype(dtype) == tf.uint8 else resized
    return bilinear_samples(frames, resized_coordinates(0, new_h, shape[1], new_h),
                            resized_coordinates(0, new_w, shape[2], new_w), dtype)


def round_to_uint8(frames):
    """Float frames in [0, 255] -> uint8, each value to the nearest level (halves up). Bilinear samples of uint8
    frames lie in [0, 255] up to float rounding, so x + 0.5 truncates without a clip: one pass, not three."""
    return tf.cast(frames + 0.5, tf.uint8)


def resized_coordinates(offset, count: int, size, new_size):
    """Where samples offset .. offset + count - 1 of a length-`size` axis resized to `new_size` take their values:
    float64 (count,) source coordinates (i + 0.5) * size / new_size - 0.5, each clamped to [0, size - 1], the
    arithmetic of bilinear resizing with half-pixel centres (torch's `interpolate(align_corners=False)`)."""
    size_f = tf.cast(size, tf.float64)
    index = tf.cast(offset, tf.float64) + tf.range(count, dtype=tf.float64)
    return tf.clip_by_value((index + 0.5) * size_f / tf.cast(new_size, tf.float64) - 0.5, 0.0, size_f - 1)


def train_crop_geometry(height, width, seed, crop_size: int, min_scale: int, max_scale: int):
    """Where the random training crop of a (height, width) frame lies, without touching pixels.

    The crop is the official one -- shorter side resized to round(uniform(min_scale, max_scale)), then a random
    crop_size square of the resized frame, flipped with probability 1/2 -- expressed in source pixels, so that
    only the pixels under it need decoding and resampling. Returns (window, rows_at, cols_at, flip):
      window: int32 [top, left, rows, cols] of source pixels the crop reads (for `decode_and_crop_jpeg`);
      rows_at, cols_at: float32 (crop_size,) each output row's / column's source coordinate in the window, where
           the resize would take it (`resized_coordinates`), columns in output order, unflipped;
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
        at = resized_coordinates(offset, crop_size, size, new_size)
        start = tf.cast(tf.floor(at[0]), tf.int32)
        extent = tf.cast(tf.math.ceil(at[-1]), tf.int32) - start + 1
        return start, extent, tf.cast(at - tf.cast(start, tf.float64), tf.float32)

    y0, rows, rows_at = axis(top, height, new_h)
    x0, cols, cols_at = axis(left, width, new_w)
    return tf.stack([y0, x0, rows, cols]), rows_at, cols_at, flip


# Frames are zero-padded up to a multiple of this before the compiled resampler, so XLA compiles it for a few
# shapes (a 8 x 224 Kinetics training clip: 1 to 4), not for each crop window's size.
_PADDED_MULTIPLE = 64


@tf.function(jit_compile=True, reduce_retracing=True)
def _separable_bilinear(frames, rows_at, cols_at, size, to_uint8: bool):
    # Rows, then columns: 2 gathers and a lerp each. XLA fuses them into one loop over the output: ~2 ms for a
    # 8 x 224^2 clip on one core, where tf.image.crop_and_resize takes 6-7 and the same ops unfused 9-11
    # (docs/data.md). The taps are computed in here too: each TF op outside costs a small clip as much.
    def lerp(x, at, size, axis):
        at = tf.cast(at, tf.float32)
        low = tf.floor(at)
        low_index = tf.cast(low, tf.int32)
        shape = [1] * len(x.shape)
        shape[axis] = -1
        a = tf.gather(x, low_index, axis=axis)
        b = tf.gather(x, tf.minimum(low_index + 1, size - 1), axis=axis)  # the frame's last, not the padding
        return a + (b - a) * tf.reshape(at - low, shape)

    samples = lerp(lerp(tf.cast(frames, tf.float32), rows_at, size[0], 1), cols_at, size[1], 2)
    return round_to_uint8(samples) if to_uint8 else samples


def bilinear_samples(frames, rows_at, cols_at, dtype=tf.float32):
    """Bilinear samples of frames (T, H, W, C) at rows `rows_at` (R,) x columns `cols_at` (S,), float coordinates
    within [0, H - 1] and [0, W - 1] -> (T, R, S, C) float32, or for dtype uint8 rounded (`round_to_uint8`).
    Columns in decreasing order sample the frame mirrored."""
    to_uint8 = tf.as_dtype(dtype) == tf.uint8
    if not to_uint8 and tf.as_dtype(dtype) != tf.float32:
        raise ValueError(f"dtype must be float32 or uint8, got {dtype}")
    size = tf.shape(frames)[1:3]
    padding = (-size) % _PADDED_MULTIPLE
    padded = tf.pad(frames, tf.stack([[0, 0], [0, padding[0]], [0, padding[1]], [0, 0]]))
    samples = _separable_bilinear(padded, rows_at, cols_at, size, to_uint8)
    return tf.ensure_shape(samples, [frames.shape[0], rows_at.shape[0], cols_at.shape[0], frames.shape[3]])


def crop_window_and_resample(window_frames, rows_at, cols_at, flip, dtype=tf.float32):
    """Frames (T, rows, cols, 3) of a crop window -> (T, crop, crop, 3) float32 (or rounded uint8) sampled at
    `rows_at` x `cols_at` (`train_crop_geometry`), mirrored when `flip` (the columns sampled right to left: the
    flip costs nothing)."""
    cols_at = tf.where(flip, tf.reverse(cols_at, axis=[0]), cols_at)
    return bilinear_samples(window_frames, rows_at, cols_at, dtype)


def random_train_crop(frames, seed, crop_size: int, min_scale: int, max_scale: int, flip: bool, dtype=tf.float32):
    """Scale jitter, random crop and random flip of decoded frames (T, H, W, 3) -> (T, crop, crop, 3) float32, or
    for dtype uint8 rounded to the nearest level.

    The pipeline does the same from JPEG bytes, decoding only the window (`train_crop_geometry`).
    """
    shape = tf.shape(frames)
    window, rows_at, cols_at, coin = train_crop_geometry(shape[1], shape[2], seed, crop_size, min_scale, max_scale)
    window_frames = frames[:, window[0] : window[0] + window[2], window[1] : window[1] + window[3]]
    return crop_window_and_resample(window_frames, rows_at, cols_at, coin & flip, dtype)


def each_frame(decode, jpegs):
    """tf.stack([decode(j) for j in jpegs]) of a (T,) string tensor -> uint8 (T, ...): unrolled when T is
    known when tracing (a clip's frame count always is), which costs less per clip than `tf.map_fn`'s loop."""
    count = jpegs.shape[0]
    if count is None:
        return tf.map_fn(decode, jpegs, fn_output_signature=tf.uint8)
    return tf.stack([decode(jpegs[i]) for i in range(count)])


def decoded_train_window(jpegs, seed, crop_size: int, min_scale: int, max_scale: int):
    """The random training crop's window decoded from JPEG bytes (T,) of equal-sized frames, and where to sample
    it: (window_frames uint8 (T, rows, cols, 3), rows_at, cols_at, flip) as `train_crop_geometry` describes."""
    height_width = tf.image.extract_jpeg_shape(jpegs[0])[:2]
    window, rows_at, cols_at, coin = train_crop_geometry(height_width[0], height_width[1], seed, crop_size,
                                                         min_scale, max_scale)
    window_frames = each_frame(
        lambda data: tf.io.decode_and_crop_jpeg(data, window, channels=3, dct_method="INTEGER_FAST"), jpegs)
    return window_frames, rows_at, cols_at, coin


def random_train_crop_jpeg(jpegs, seed, crop_size: int, min_scale: int, max_scale: int, flip: bool,
                           dtype=tf.float32):
    """`random_train_crop` straight from JPEG bytes (T,) of equal-sized frames: decodes only the crop window."""
    window_frames, rows_at, cols_at, coin = decoded_train_window(jpegs, seed, crop_size, min_scale, max_scale)
    return crop_window_and_resample(window_frames, rows_at, cols_at, coin & flip, dtype)


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
