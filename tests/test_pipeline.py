"""tf.data pipelines and their transforms: TF sampling == the NumPy reference, crops and resizes against NumPy /
torch, per-host splits, view counts, determinism, and that clips hold the frames the sampling rule names."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
import torch
import torch.nn.functional as F

import timesformer_jax.data.builders  # noqa: F401  (registers the builders)
from timesformer_jax.data import sampling, transforms
from timesformer_jax.data.pipeline import ClipConfig, eval_dataset, eval_num_batches, host_split, train_dataset
from timesformer_jax.data.video_io import write_video


def test_tf_sampling_matches_numpy_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        length, frames = int(rng.integers(1, 400)), int(rng.integers(1, 17))
        rate, fps, position = int(rng.integers(1, 33)), float(rng.choice([0, 12.5, 25, 29.97, 30, 60])), rng.random()
        expected = sampling.dense_indices(length, frames, rate, position, fps=fps)
        np.testing.assert_array_equal(transforms.dense_indices(length, frames, rate, position, fps).numpy(), expected)
        offsets = rng.random(frames)
        np.testing.assert_array_equal(transforms.segment_indices(length, frames, offsets).numpy(),
                                      sampling.segment_indices(length, frames, offsets))
        np.testing.assert_array_equal(transforms.segment_indices(length, frames).numpy(),
                                      sampling.segment_indices(length, frames))


def torch_resize_short_side(frames, short_side):
    """The official resize: (T, H, W, C) -> shorter side `short_side`, longer floor(longer / shorter * short_side),
    by torch's bilinear interpolate(align_corners=False)."""
    h, w = frames.shape[1:3]
    if h <= w:
        size = (short_side, int(np.floor(w / h * short_side)))
    else:
        size = (int(np.floor(h / w * short_side)), short_side)
    return F.interpolate(torch.from_numpy(np.asarray(frames, np.float32)).permute(0, 3, 1, 2), size=size,
                         mode="bilinear", align_corners=False).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("shape", [(2, 30, 20, 3), (2, 20, 30, 3), (2, 24, 24, 3), (2, 9, 13, 3)])
def test_resize_short_side_matches_torch_bilinear(shape):
    frames = np.random.default_rng(1).uniform(0, 255, shape).astype(np.float32)
    reference = torch_resize_short_side(frames, 16)
    np.testing.assert_allclose(transforms.resize_short_side(frames, 16).numpy(), reference, atol=1e-3)
    as_uint8 = transforms.resize_short_side(frames.round().astype(np.uint8), 16, dtype=tf.uint8).numpy()
    rounded = torch_resize_short_side(frames.round(), 16)
    assert as_uint8.dtype == np.uint8 and np.abs(as_uint8 - rounded).max() <= 0.5 + 1e-3  # the nearest level


def test_uniform_crop_takes_start_centre_end_of_the_longer_side():
    tall = np.arange(1 * 30 * 16 * 3).reshape(1, 30, 16, 3)
    for index, top in [(0, 0), (1, 7), (2, 14)]:  # centre: ceil((30 - 16) / 2) = 7
        np.testing.assert_array_equal(transforms.uniform_crop(tall, 16, index).numpy(), tall[:, top:top + 16])
    wide = np.arange(1 * 16 * 25 * 3).reshape(1, 16, 25, 3)
    for index, left in [(0, 0), (1, 5), (2, 9)]:  # centre: ceil(9 / 2) = 5
        np.testing.assert_array_equal(transforms.uniform_crop(wide, 16, index).numpy(), wide[:, :, left:left + 16])


@pytest.mark.parametrize("shape", [(2, 18, 24, 3), (2, 9, 13, 3)])  # the jittered resize shrinks / enlarges
def test_random_train_crop_is_a_jittered_crop_and_a_fair_flip(shape):
    frames = np.random.default_rng(2).uniform(0, 255, shape).astype(np.float32)
    candidates = {s: torch_resize_short_side(frames, s) for s in range(12, 15)}
    flips = 0
    for i in range(40):
        out = transforms.random_train_crop(frames, tf.constant([7, i]), 10, 12, 14, flip=True).numpy()
        unflipped = out[:, :, ::-1]
        found = None
        for scale, resized in candidates.items():
            for top in range(resized.shape[1] - 9):
                for left in range(resized.shape[2] - 9):
                    window = resized[:, top:top + 10, left:left + 10]
                    if np.allclose(window, out, atol=2e-3):  # float32 sample positions, values in 0..255
                        found = "plain"
                    elif np.allclose(window, unflipped, atol=2e-3):
                        found = "flipped"
        assert found, f"seed {i}: output is no crop of a jittered resize"
        flips += found == "flipped"
    assert 8 <= flips <= 32  # a fair coin over 40 draws
    again = transforms.random_train_crop(frames, tf.constant([7, 3]), 10, 12, 14, flip=True).numpy()
    np.testing.assert_array_equal(again, transforms.random_train_crop(frames, tf.constant([7, 3]), 10, 12, 14, True))


def test_jpeg_window_decoding_equals_decode_then_crop():
    y, x = np.mgrid[0:36, 0:48]
    image = np.stack([x * 5, y * 7, (x + y) * 2], axis=-1).astype(np.uint8)  # smooth: JPEG keeps it close
    jpegs = tf.stack([tf.io.encode_jpeg(image + 3 * t, quality=95) for t in range(3)])
    decoded = tf.map_fn(lambda d: tf.io.decode_jpeg(d, channels=3, dct_method="INTEGER_FAST"), jpegs,
                        fn_output_signature=tf.uint8)
    for i in range(10):
        seed = tf.constant([1, i])
        windowed = transforms.random_train_crop_jpeg(jpegs, seed, 16, 20, 30, flip=True).numpy()
        full = transforms.random_train_crop(decoded, seed, 16, 20, 30, flip=True).numpy()
        assert np.abs(windowed - full).mean() < 0.1 and np.abs(windowed - full).max() < 2  # chroma at window edges


def test_normalise():
    out = transforms.normalise(tf.constant([[0.0, 127.5, 255.0]]), (0.5, 0.5, 0.5), (0.25, 0.5, 1.0)).numpy()
    np.testing.assert_allclose(out, [[-2.0, 0.0, 0.5]])


@pytest.fixture(scope="module")
def counting_dataset(tmp_path_factory):
    """video_folder dataset whose frame i is uniformly grey level 8 * i: the pixels say which frames were read."""
    root = tmp_path_factory.mktemp("counting")
    lengths = {"a": 30, "b": 24, "c": 12, "d": 28, "e": 20}
    for split in ("train", "validation"):
        for name, length in lengths.items():
            frames = np.repeat((8 * np.arange(length, dtype=np.uint8))[:, None, None, None], 3, axis=3)
            write_video(root / "manual" / split / f"class_{name}" / f"{name}.mp4",
                        np.broadcast_to(frames, (length, 24, 32, 3)).copy(), fps=15)
    builder = tfds.builder("video_folder", data_dir=str(root / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root / "manual")))
    return builder, lengths


def frame_indices(video, config):
    """Recover source frame indices from normalised grey clips (T, H, W, 3)."""
    pixels = np.asarray(video, np.float32) * np.asarray(config.std) + np.asarray(config.mean)
    return np.round(pixels.mean(axis=(1, 2, 3)) * 255 / 8).astype(int)


CONFIG = ClipConfig(num_frames=4, sampling_rate=2, target_fps=15, crop_size=16, train_scale=(16, 20),
                    num_temporal_views=2, num_spatial_crops=3)


def test_eval_views_sample_the_official_frames(counting_dataset):
    builder, lengths = counting_dataset
    ds = eval_dataset(builder, "validation", 4, CONFIG, process_index=0, process_count=1)
    batches = list(tfds.as_numpy(ds))
    views = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    valid = views["mask"] == 1
    assert valid.sum() == len(lengths) * 6 and len(views["mask"]) % 4 == 0
    for row in np.flatnonzero(valid):
        name = views["video_id"][row].decode().split("/")[0].removeprefix("class_")
        temporal_view = views["view"][row] // 3
        position = sampling.temporal_view_positions(2)[temporal_view]
        expected = sampling.dense_indices(lengths[name], 4, 2, position, fps=15, target_fps=15)
        np.testing.assert_array_equal(frame_indices(views["video"][row], CONFIG), expected)
    for index in set(views["example_index"][valid]):  # every video: all 6 views
        assert sorted(views["view"][valid & (views["example_index"] == index)]) == list(range(6))


def test_train_clips_are_dense_clips_and_deterministic(counting_dataset):
    builder, lengths = counting_dataset
    def first_batches(seed):
        ds = train_dataset(builder, "train", 2, CONFIG, seed=seed, process_index=0, process_count=1)
        return list(tfds.as_numpy(ds.take(6)))

    run1, run2, other = first_batches(3), first_batches(3), first_batches(4)
    for b1, b2 in zip(run1, run2):
        np.testing.assert_array_equal(b1["video"], b2["video"])
        np.testing.assert_array_equal(b1["label"], b2["label"])
    assert any(not np.array_equal(a["video"], b["video"]) for a, b in zip(run1, other))
    for batch in run1:
        for clip in batch["video"]:
            idx = frame_indices(clip, CONFIG)
            steps = np.diff(idx)
            assert (steps >= 0).all() and steps.max() <= 3  # 4 frames spread over a 8-frame window
        assert batch["video"].shape == (2, 4, 16, 16, 3) and batch["video"].dtype == np.float32


def test_host_splits_are_disjoint_and_cover(counting_dataset):
    builder, lengths = counting_dataset
    seen = []
    for host in range(3):
        ds = builder.as_dataset(split=host_split("train", host, 3), decoders={"video": tfds.decode.SkipDecoding()})
        seen.append({ex["video_id"].decode() for ex in tfds.as_numpy(ds)})
    assert sum(len(s) for s in seen) == len(lengths) and set.union(*seen) == {f"class_{n}/{n}" for n in lengths}
    assert eval_num_batches(5, 3, 6, 4) == 3  # ceil(ceil(5 / 3) * 6 / 4)
    ds = eval_dataset(builder, "train", 4, CONFIG, num_batches=3, process_index=2, process_count=3)
    batches = list(tfds.as_numpy(ds))
    assert len(batches) == 3 and sum(b["mask"].sum() for b in batches) == len(seen[2]) * 6


def test_bfloat16_and_config_checks(counting_dataset):
    builder, _ = counting_dataset
    config = ClipConfig(num_frames=4, sampling="segment", crop_size=16, train_scale=(16, 20), flip=False,
                        dtype="bfloat16")
    batch = next(iter(tfds.as_numpy(train_dataset(builder, "train", 2, config, process_index=0, process_count=1))))
    assert batch["video"].dtype.name == "bfloat16"
    with pytest.raises(ValueError, match="sampling must be one of"):
        ClipConfig(sampling="random")
    with pytest.raises(ValueError, match="crop_size <= min <= max"):
        ClipConfig(crop_size=224, train_scale=(200, 320))
