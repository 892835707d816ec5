"""The frame store (a record per frame): the same frames as the TFDS layout, the same eval clips, a clip reads
only its own frames, determinism, per-host parts, and no half-written store after a failure."""
import json
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from timesformer_jax.data import frame_store
from timesformer_jax.data.frame_store import FrameStore, write_frame_store
from timesformer_jax.data.pipeline import ClipConfig, eval_dataset, host_range, train_dataset

CLIP = ClipConfig(num_frames=4, sampling_rate=4, target_fps=10, crop_size=32, train_scale=(32, 40),
                  num_spatial_crops=3, dtype="uint8")


@pytest.fixture(scope="module")
def builder(data_dir):
    from timesformer_jax.data.builders import dataset_builder

    return dataset_builder("synthetic_motion", str(data_dir), "ci")


@pytest.fixture(scope="module")
def store_root(builder, tmp_path_factory):
    # 50 videos per shard: several shards per split, so reads cross shard boundaries
    return write_frame_store(builder, tmp_path_factory.mktemp("store") / "frames", videos_per_shard=50,
                             log=lambda message: None)


def tfds_videos(builder, split):
    ds = builder.as_dataset(split=split, shuffle_files=False, decoders={"video": tfds.decode.SkipDecoding()})
    return list(tfds.as_numpy(ds))


def test_the_store_holds_every_frame_of_every_video_in_the_split_order(builder, store_root):
    store = FrameStore(store_root)
    assert store.class_names == list(builder.info.features["label"].names)
    for split, info in builder.info.splits.items():
        index = store.split(split)
        assert len(index) == info.num_examples
        assert store.metadata["splits"][split]["shards"] == -(-info.num_examples // 50)
        for v, example in enumerate(tfds_videos(builder, split)):
            assert index.video_id[v] == example["video_id"].decode()
            assert index.label[v] == example["label"] and index.fps[v] == example["fps"]
            assert index.num_frames[v] == len(example["video"])
            assert store.read_frames(split, v, range(len(example["video"]))) == list(example["video"])


def test_reads_any_frames_in_any_order_and_counts_them(builder, store_root):
    store = FrameStore(store_root)
    example = tfds_videos(builder, "test")[7]
    frames = store.read_frames("test", 7, [5, 0, 5, 15])
    assert frames == [example["video"][i] for i in (5, 0, 5, 15)]
    assert store.records_read == 4 and store.bytes_read == sum(len(f) for f in frames)
    with pytest.raises(IndexError, match="has 16 frames"):
        store.read_frames("test", 7, [16])
    with pytest.raises(ValueError, match=r"no split 'validation'.*\['test', 'train'\]"):
        store.read_frames("validation", 0, [0])


def test_eval_clips_from_the_store_equal_those_from_tfds(builder, store_root):
    from_tfds = list(tfds.as_numpy(eval_dataset(builder, "test", 8, CLIP, process_index=0, process_count=1)))
    from_store = list(tfds.as_numpy(eval_dataset(FrameStore(store_root), "test", 8, CLIP, process_index=0,
                                                 process_count=1)))
    assert len(from_store) == len(from_tfds) > 0
    for a, b in zip(from_tfds, from_store):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_training_epoch_reads_only_the_sampled_frames(builder, store_root):
    store = FrameStore(store_root)
    videos = store.num_examples("train")
    batches = list(tfds.as_numpy(train_dataset(store, "train", 8, CLIP, seed=1, repeat=False, process_index=0,
                                               process_count=1)))
    assert len(batches) == videos // 8
    records, read = store.records_read, store.bytes_read
    # every video once: its 4 sampled frames, never the other 12
    assert records == videos * CLIP.num_frames
    sizes = [sorted(len(f) for f in store.read_frames("train", v, range(16))) for v in range(videos)]
    assert sum(sum(s[:4]) for s in sizes) <= read <= sum(sum(s[-4:]) for s in sizes)
    labels = np.concatenate([b["label"] for b in batches])
    counts = np.bincount(store.split("train").label, minlength=10)
    assert (np.bincount(labels, minlength=10) <= counts).all() and len(labels) > videos - 8


def test_training_clips_are_fixed_by_the_seed_and_resume_inside_the_stream(store_root):
    store = FrameStore(store_root)

    def stream(seed, skip=0):
        ds = train_dataset(store, "train", 4, CLIP, seed=seed, skip_batches=skip, process_index=0, process_count=1)
        return list(tfds.as_numpy(ds.take(6 - skip)))

    first, again, resumed, other = stream(0), stream(0), stream(0, skip=2), stream(1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["video"], b["video"])
    for a, b in zip(first[2:], resumed):
        np.testing.assert_array_equal(a["video"], b["video"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert any((a["video"] != b["video"]).any() for a, b in zip(first, other))


def test_hosts_read_disjoint_parts_that_cover_the_split(store_root):
    store = FrameStore(store_root)
    ranges = [host_range(store.num_examples("test"), i, 3) for i in range(3)]
    assert ranges[0][0] == 0 and ranges[-1][1] == store.num_examples("test")
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    seen = []
    for i in range(3):
        for batch in tfds.as_numpy(eval_dataset(store, "test", 6, CLIP, process_index=i, process_count=3)):
            seen.extend(batch["video_id"][batch["mask"] == 1].tolist())
    ids = [v.encode() for v in store.split("test").video_id]
    assert sorted(seen) == sorted(ids * CLIP.num_views)


def test_a_failed_write_leaves_no_store(builder, tmp_path, monkeypatch):
    def fail(job):
        raise OSError("disk full")

    monkeypatch.setattr(frame_store, "_write_shard", fail)
    with pytest.raises(OSError, match="disk full"):
        write_frame_store(builder, tmp_path / "frames", log=lambda message: None)
    with pytest.raises(FileNotFoundError, match="--layout frames"):
        FrameStore(tmp_path / "frames")


def test_an_existing_store_of_the_same_source_is_kept(builder, store_root):
    messages = []
    assert write_frame_store(builder, store_root, log=messages.append) == store_root
    assert "already written" in messages[0]


@pytest.mark.slow
def test_training_and_evaluation_read_the_frame_store_the_config_names(builder, data_dir, tmp_path):
    from test_training_loop import tiny_config

    from timesformer_jax.train.experiment import build_experiment
    from timesformer_jax.train.loop import EVAL_DIR, train_and_evaluate

    config = tiny_config(data_dir, max_steps=3)
    config.dataset.layout = "frames"
    config.dataset.eval_split = "test"
    if not frame_store.frame_store_dir(builder).exists():
        with pytest.raises(FileNotFoundError, match="--layout frames"):
            build_experiment(config)
        write_frame_store(builder, log=lambda message: None)
    assert isinstance(build_experiment(config).data_source, FrameStore)
    summary = train_and_evaluate(config, tmp_path / "run", log=lambda message: None)
    assert summary.last_step == 3 and summary.eval_metrics is not None
    metrics = json.loads((tmp_path / "run" / EVAL_DIR / "metrics.json").read_text())
    assert metrics["num_videos"] == builder.info.splits["test"].num_examples
    config.dataset.eval_split = "test[:16]"
    with pytest.raises(ValueError, match="TFDS slices"):
        build_experiment(config)


@pytest.mark.slow
def test_build_dataset_tool_writes_the_frame_store_and_reports_it(data_dir, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    # the prepared CI dataset copied (with its generated videos, without a frame store another test may have
    # written), so the tool only adds the frame store
    shutil.copytree(data_dir, tmp_path / "tfds", ignore=shutil.ignore_patterns("frames"))
    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, str(repo / "tools" / "build_dataset.py"), "--dataset", "synthetic_motion",
               "--config", "ci", "--data_dir", str(tmp_path / "tfds"), "--layout", "frames", "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    store = FrameStore(next((tmp_path / "tfds" / "synthetic_motion" / "ci").glob("*")) / "frames")
    assert store.num_examples("train") + store.num_examples("test") == 320
    assert "frame store in" in result.stdout
    assert re.search(rf"train\s+{store.num_examples('train')} videos", result.stdout), result.stdout
    assert "shard 1/" in result.stdout + result.stderr
