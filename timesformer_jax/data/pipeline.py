"""tf.data pipelines over the prepared datasets: training clips, and multi-view test clips.

    train: {'video': (B, T, crop, crop, 3) float32|bfloat16, 'label': (B,) int32}
    test:  the same plus 'view' (B,) (temporal_view * num_spatial_crops + spatial_crop), 'example_index' (B,)
           (position of the video in this host's split, so views aggregate per video), 'video_id' (B,) and
           'mask' (B,) (0 for padding that completes the last batch).

Only the sampled frames are JPEG-decoded (the stored frames are read as undecoded strings). The source is a
prepared TFDS builder (a record per video, read whole) or a `frame_store.FrameStore` (a record per frame: a clip
reads only its frames). Each host reads its own part of the split (`tfds.even_splits` / `host_range` by
process), TensorFlow stays on the CPU, and every random choice is a stateless function of (seed, element
counter), so the order and content of batches are fixed by the seed.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

tf.config.set_visible_devices([], "GPU")  # input only: keep TF off accelerators
import tensorflow_datasets as tfds  # noqa: E402

from timesformer_jax.data import transforms  # noqa: E402
from timesformer_jax.data.clip_config import ClipConfig  # noqa: E402,F401 (the pipelines' argument)
from timesformer_jax.data.frame_store import FrameStore  # noqa: E402
from timesformer_jax.data.sampling import temporal_view_positions  # noqa: E402

def host_split(split: str, process_index: int | None = None, process_count: int | None = None) -> str:
    """This host's part of `split`: one of `process_count` near-equal, disjoint, covering sub-splits."""
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    if process_count == 1:
        return split
    return tfds.even_splits(split, n=process_count)[process_index]


def _read(builder: tfds.core.DatasetBuilder, split: str, shuffle: bool, seed: int) -> tf.data.Dataset:
    read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=16 if shuffle else 1)
    return builder.as_dataset(
        split=split,
        decoders={"video": tfds.decode.SkipDecoding()},
        shuffle_files=shuffle,
        read_config=read_config,
    )


def _decode(jpegs):
    """A (N,) vector of JPEG strings -> uint8 (N, H, W, 3)."""
    return transforms.each_frame(lambda data: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_FAST"),
                                 jpegs)


def _temporal_indices(config: ClipConfig, length, fps, position, offsets):
    if config.sampling == "dense":
        return transforms.dense_indices(length, config.num_frames, config.sampling_rate, position, fps, config.target_fps)
    return transforms.segment_indices(length, config.num_frames, offsets)


def resampled_dtype(config: ClipConfig):
    """What the resamples yield for `config`: uint8 (rounded as they sample) for uint8 pipelines, else float32."""
    return tf.uint8 if config.dtype == "uint8" else tf.float32


def finish_frames(frames, config: ClipConfig):
    """Resized, cropped frames of `resampled_dtype(config)` -> the pipeline's output: normalised float32 /
    bfloat16, or for dtype "uint8" the uint8 frames as they are, normalised later on the device
    (`data.device_input`)."""
    if config.dtype == "uint8":
        return frames if frames.dtype == tf.uint8 else transforms.round_to_uint8(frames)
    frames = transforms.normalise(frames, config.mean, config.std)
    return tf.cast(frames, tf.bfloat16 if config.dtype == "bfloat16" else tf.float32)


def train_dataset(
    source,
    split: str,
    batch_size: int,
    config: ClipConfig = ClipConfig(),
    *,
    seed: int = 0,
    shuffle_buffer: int = 512,
    repeat: bool = True,
    skip_batches: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
) -> tf.data.Dataset:
    """Endless (unless repeat=False), shuffled batches of randomly sampled and augmented training clips from
    `source`, a prepared TFDS builder or a `FrameStore`. `batch_size` is per host. `skip_batches` resumes inside
    the stream: the batches after the first `skip_batches` are exactly those an unskipped stream yields there,
    and the skipped clips are never decoded. From a frame store each epoch visits every video of the host's part
    once, in a seeded order (`shuffle_buffer` is not used), and a clip reads only its frames' records."""

    def clip_seeds(counter):
        key = tf.stack([tf.constant(seed, tf.int64), counter])
        return tf.random.experimental.stateless_split(key, 3)

    def clip_indices(seeds, length, fps):
        position = tf.random.stateless_uniform([], seeds[0], dtype=tf.float64)
        offsets = tf.random.stateless_uniform([config.num_frames], seeds[1], dtype=tf.float64)
        return _temporal_indices(config, length, fps, position, offsets)

    def make_clip(clip):
        frames = transforms.random_train_crop_jpeg(clip["jpegs"], clip["seed"], config.crop_size, *config.train_scale,
                                                   config.flip, resampled_dtype(config))
        return {"video": finish_frames(frames, config), "label": tf.cast(clip["label"], tf.int32)}

    if isinstance(source, FrameStore):
        lo, hi = host_range(source.num_examples(split), process_index, process_count)
        read, length_of, fps_of, label_of = store_reader(source, split)
        ds = tf.data.Dataset.range(lo, hi).shuffle(hi - lo, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.enumerate().skip(skip_batches * batch_size)

        def sample_stored_frames(counter, video):
            seeds = clip_seeds(counter)
            indices = clip_indices(seeds, tf.gather(length_of, video), tf.gather(fps_of, video))
            return {"jpegs": read(video, indices), "label": tf.gather(label_of, video), "seed": seeds[2]}

        # one map per clip: nothing to shuffle between reading and cropping
        ds = ds.map(lambda counter, video: make_clip(sample_stored_frames(counter, video)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = _read(source, host_split(split, process_index, process_count), shuffle=True, seed=seed)
        if repeat:
            ds = ds.repeat()

        def sample_frames(counter, example):
            # Keep only the sampled frames' JPEG strings, so the shuffle buffer holds clips, not whole videos.
            seeds = clip_seeds(counter)
            indices = clip_indices(seeds, tf.shape(example["video"])[0], example["fps"])
            return {"jpegs": tf.gather(example["video"], indices), "label": example["label"], "seed": seeds[2]}

        ds = ds.enumerate().map(sample_frames, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.shuffle(shuffle_buffer, seed=seed).skip(skip_batches * batch_size)
        ds = ds.map(make_clip, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _with_options(ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def host_range(num_videos: int, process_index: int | None = None, process_count: int | None = None) -> tuple[int, int]:
    """[lo, hi): this host's videos of a frame-store split, one of `process_count` near-equal, disjoint,
    covering ranges."""
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    return num_videos * process_index // process_count, num_videos * (process_index + 1) // process_count


def store_reader(store: FrameStore, split: str):
    """(read(video, indices) -> (len(indices),) JPEG strings, then num_frames, fps and label per video as
    constants) for tf.data maps over a frame store's `split`."""
    index = store.split(split)

    def read_numpy(video, indices):
        return np.array(store.read_frames(split, int(video), indices), dtype=object)

    def read(video, indices):
        jpegs = tf.numpy_function(read_numpy, [video, indices], tf.string, stateful=False)
        return tf.ensure_shape(jpegs, indices.shape)  # as many strings as indices

    return (read, tf.constant(index.num_frames, tf.int32), tf.constant(index.fps, tf.float32),
            tf.constant(index.label, tf.int64))


def eval_view_indices(config: ClipConfig, length, fps):
    """(num_temporal_views, num_frames) int32 frame indices of the test views of a video of `length` frames at
    `fps`: dense clips at view / num_views of the span, or segment middles (evenly spread offsets for several
    views). Shared by the eval pipeline and `inference` (files decoded with PyAV)."""
    nt, t = config.num_temporal_views, config.num_frames
    positions = tf.constant(temporal_view_positions(nt), tf.float64)
    offsets = tf.constant(np.repeat(((np.arange(nt) + 0.5) / nt)[:, None], t, axis=1), tf.float64)
    return tf.stack([_temporal_indices(config, length, fps, positions[v], None if nt == 1 else offsets[v])
                     for v in range(nt)])


def eval_view_clips(frames, config: ClipConfig):
    """The test views from the frames `eval_view_indices` named, in its order (uint8 (nt * T, H, W, 3), any size)
    -> (num_views, T, crop, crop, 3) normalised: shorter side resized to the crop size, then 1 (centre) or 3
    crops along the longer side, view = temporal_view * num_spatial_crops + spatial_crop."""
    return eval_crops(transforms.resize_short_side(frames, config.crop_size, config.antialias, resampled_dtype(config)),
                      config)


def eval_crops(frames, config: ClipConfig):
    """`eval_view_clips` after its resize: frames whose shorter side is already the crop size ((nt * T, H, W, 3)
    float32, or uint8 for uint8 pipelines, from `transforms.resize_short_side`) -> (num_views, T, crop, crop, 3)
    normalised. For callers that resize frame by frame as they decode (the resize is per frame, so the result is
    the same)."""
    nt, ns, t = config.num_temporal_views, config.num_spatial_crops, config.num_frames
    # finishing is per value, so it commutes with cropping: done once on the frames, not on each overlapping crop
    # (the 3 crops hold 1.7x a 16:9 frame's values), and the crops then copy uint8 instead of float32
    frames = finish_frames(frames, config)
    clips = []
    for v in range(nt):
        clip = frames[v * t : (v + 1) * t]
        clips.extend(transforms.uniform_crop(clip, config.crop_size, s) for s in ([1] if ns == 1 else [0, 1, 2]))
    return tf.stack(clips)


def eval_num_batches(num_examples: int, process_count: int, num_views: int, batch_size: int) -> int:
    """Batches every host yields for a split of `num_examples` videos: enough for the largest host part, so all
    hosts run the same number of eval steps."""
    return math.ceil(math.ceil(num_examples / process_count) * num_views / batch_size)


def eval_dataset(
    source,
    split: str,
    batch_size: int,
    config: ClipConfig = ClipConfig(),
    *,
    num_batches: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> tf.data.Dataset:
    """Every video of the host's split of `source` (a prepared TFDS builder or a `FrameStore`) as
    `config.num_views` clips, in a fixed order, in batches padded to full size (`mask` 0). `num_batches` pads
    further to that many batches (see `eval_num_batches`)."""
    t = config.num_frames

    def make_views(index, jpegs_of, length, fps, label, video_id):
        # jpegs_of(indices): the JPEG strings of those frames of the video
        frames = _decode(jpegs_of(tf.reshape(eval_view_indices(config, length, fps), [-1])))
        views = config.num_views
        return {
            "video": eval_view_clips(frames, config),
            "label": tf.fill([views], tf.cast(label, tf.int32)),
            "view": tf.range(views, dtype=tf.int32),
            "example_index": tf.fill([views], tf.cast(index, tf.int32)),
            "video_id": tf.fill([views], video_id),
            "mask": tf.ones([views], tf.int32),
        }

    if isinstance(source, FrameStore):
        lo, hi = host_range(source.num_examples(split), process_index, process_count)
        read, length_of, fps_of, label_of = store_reader(source, split)
        video_ids = tf.constant(source.split(split).video_id)

        def views_of_stored(index, video):
            return make_views(index, lambda indices: read(video, indices), tf.gather(length_of, video),
                              tf.gather(fps_of, video), tf.gather(label_of, video), tf.gather(video_ids, video))

        ds = tf.data.Dataset.range(lo, hi).enumerate().map(views_of_stored, num_parallel_calls=tf.data.AUTOTUNE,
                                                             deterministic=True)
    else:
        ds = _read(source, host_split(split, process_index, process_count), shuffle=False, seed=0).enumerate()
        ds = ds.map(lambda index, example: make_views(
                        index, lambda indices: tf.gather(example["video"], indices), tf.shape(example["video"])[0],
                        example["fps"], example["label"], example["video_id"]),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.unbatch()
    dtype = {"bfloat16": tf.bfloat16, "uint8": tf.uint8}.get(config.dtype, tf.float32)
    padding = tf.data.Dataset.from_tensors({
        "video": tf.zeros([t, config.crop_size, config.crop_size, 3], dtype),
        "label": tf.constant(0, tf.int32),
        "view": tf.constant(-1, tf.int32),
        "example_index": tf.constant(-1, tf.int32),
        "video_id": tf.constant(""),
        "mask": tf.constant(0, tf.int32),
    })
    if num_batches is None:
        ds = ds.concatenate(padding.repeat(batch_size - 1)).batch(batch_size, drop_remainder=True)
    else:
        ds = ds.concatenate(padding.repeat()).batch(batch_size).take(num_batches)
    return _with_options(ds.prefetch(tf.data.AUTOTUNE))


def _with_options(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = True
    return ds.with_options(options)
