"""Video I/O, the generated dataset and the TFDS builders, on small trees of generated videos written with the
codecs real copies use (H.264 .mp4 for Kinetics, VP9 .webm for SSv2, MPEG-4 Part 2 .avi for UCF101)."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from timesformer_jax.data import builders, video_examples
from timesformer_jax.data.annotations import AnnotationError
from timesformer_jax.data.synthetic_motion import (CLASSES, REVERSAL_PAIRS, SyntheticSize, render_clip,
                                                   write_synthetic_motion)
from timesformer_jax.data.video_io import VideoReadError, decode_video, resized_shape, write_video


def gradient_clip(frames=6, height=48, width=64, seed=0):
    """(T, H, W, 3) uint8 with smooth content (codecs keep it close) that differs per frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.uniform(0, 1, 3)
    clip = [(np.stack([(x / width + base[0] + t / 10) % 1, y / height, np.full_like(x, base[2], float)], -1) * 255)
            for t in range(frames)]
    return np.asarray(clip).astype(np.uint8)


@pytest.mark.parametrize("suffix, fps, size", [(".mp4", 30.0, (48, 64)), (".webm", 12.0, (64, 36)),
                                               (".avi", 25.0, (40, 40))])
def test_codecs_round_trip(tmp_path, suffix, fps, size):
    clip = gradient_clip(height=size[0], width=size[1])
    write_video(tmp_path / f"v{suffix}", clip, fps)
    decoded = decode_video(tmp_path / f"v{suffix}", short_side=None)
    assert decoded.frames.shape == clip.shape and decoded.fps == pytest.approx(fps)
    assert np.abs(decoded.frames.astype(int) - clip).mean() < 6  # lossy, but the same picture
    small = decode_video(tmp_path / f"v{suffix}", short_side=20)
    assert small.frames.shape[1:3] == resized_shape(*size, 20) and min(small.frames.shape[1:3]) == 20


def test_resized_shape_never_upscales_and_keeps_aspect():
    assert resized_shape(240, 320, 320) == (240, 320)
    assert resized_shape(480, 640, 320) == (320, 426)
    assert resized_shape(1080, 1920, 256) == (256, 456)


def test_bad_videos_raise_video_read_error(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.avi").write_bytes(b"not a video" * 50)
    write_video(tmp_path / "ok.mp4", gradient_clip(), 10)
    data = (tmp_path / "ok.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    for name, phrase in [("empty.mp4", "empty"), ("garbage.avi", "cannot decode"), ("cut.mp4", "truncated"),
                         ("absent.mp4", "no video file")]:
        with pytest.raises(VideoReadError, match=phrase):
            decode_video(tmp_path / name)


def test_synthetic_reversed_classes_are_reversed_clips():
    for first, second in REVERSAL_PAIRS:
        a = render_clip(first, np.random.default_rng(7), 32, 8)
        b = render_clip(second, np.random.default_rng(7), 32, 8)
        np.testing.assert_array_equal(b, a[::-1])
        assert not np.array_equal(a, a[::-1])  # and the motion is visible
    still = render_clip("still_ring", np.random.default_rng(3), 32, 8)
    np.testing.assert_array_equal(still, still[::-1])
    np.testing.assert_array_equal(render_clip("approach", np.random.default_rng(1), 32, 8),
                                  render_clip("approach", np.random.default_rng(1), 32, 8))


def test_synthetic_written_pairs_are_the_same_clips_reversed(tmp_path):
    """In the written dataset, clip i of a reversed class is clip i of its forward class played backwards, so
    backgrounds and shapes cannot tell a pair apart; different indices and splits hold different clips."""
    root = write_synthetic_motion(tmp_path, SyntheticSize(train_per_class=2, test_per_class=1, image_size=32,
                                                          num_frames=8))

    def clip(split, label, index):
        return decode_video(root / split / label / f"{label}_{index:04d}.mkv", None).frames.astype(np.float64)

    for first, second in REVERSAL_PAIRS:
        for split, index in [("train", 0), ("train", 1), ("test", 0)]:
            forward, backward = clip(split, first, index), clip(split, second, index)
            # lossless files: exactly the same frames, in the opposite order
            np.testing.assert_array_equal(backward, forward[::-1])
            assert np.abs(backward - forward).mean() > 1.0
        assert np.abs(clip("train", first, 0) - clip("train", first, 1)).mean() > 10.0
        assert np.abs(clip("train", first, 0) - clip("test", first, 0)).mean() > 10.0


def prepare(name, config, data_dir, manual_dir):
    builder = tfds.builder(f"{name}/{config}", data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def skipped(builder) -> dict[str, str]:
    lines = (Path(builder.data_dir) / builders.SKIPPED_FILE).read_text().splitlines()
    return {line.split("\t")[1]: line.split("\t")[2] for line in lines}


def read_split(builder, split):
    ds = builder.as_dataset(split=split, decoders={"video": tfds.decode.SkipDecoding()})
    return {ex["video_id"].decode(): ex for ex in tfds.as_numpy(ds)}


def test_video_folder_builder_skips_bad_files(tmp_path):
    root = tmp_path / "manual"
    write_video(root / "train" / "cats" / "a.mp4", gradient_clip(5), 10)
    write_video(root / "train" / "dogs" / "b.webm", gradient_clip(7, seed=1), 15)
    write_video(root / "val" / "cats" / "c.avi", gradient_clip(4, seed=2), 25)
    (root / "train" / "dogs" / "empty.mp4").write_bytes(b"")
    builder = prepare("video_folder", "default", tmp_path / "tfds", root)
    assert builder.info.features["label"].names == ["cats", "dogs"]
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 2, "validation": 1}
    train = read_split(builder, "train")
    assert len(train["dogs/b"]["video"]) == 7 and train["dogs/b"]["label"] == 1
    assert train["dogs/b"]["fps"] == pytest.approx(15)
    assert "empty" in skipped(builder)["dogs/empty"]


def kinetics_tree(root: Path, header="label,youtube_id,time_start,time_end,split"):
    write_video(root / "train" / "abseiling" / "aaa_000010_000020.mp4", gradient_clip(5), 30)
    write_video(root / "train" / "zumba" / "bbb_000000_000010.mp4", gradient_clip(6, seed=1), 30)
    write_video(root / "flat" / "ccc_000003_000013.mp4", gradient_clip(4, seed=2), 30)  # flat layout
    (root / "flat" / "ddd_000001_000011.mp4").write_bytes(b"\x00" * 100)  # corrupt
    (root / "annotations").mkdir()
    (root / "annotations" / "train.csv").write_text(
        f"{header}\nabseiling,aaa,10,20,train\nzumba,bbb,0,10,train\nzumba,eee,5,15,train\n")
    (root / "annotations" / "validate.csv").write_text(f"{header}\nabseiling,ccc,3,13,validate\nzumba,ddd,1,11,validate\n")


def test_kinetics_builder(tmp_path):
    kinetics_tree(tmp_path / "k400")
    builder = prepare("kinetics", "400", tmp_path / "tfds", tmp_path / "k400")
    assert builder.info.features["label"].names == ["abseiling", "zumba"]
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 2, "validation": 1}
    reasons = skipped(builder)
    assert reasons["eee_000005_000015"] == "missing video file"
    assert "cannot decode" in reasons["ddd_000001_000011"]
    assert read_split(builder, "validation")["ccc_000003_000013"]["label"] == 0


def test_kinetics_wrong_columns_fail_before_decoding(tmp_path, monkeypatch):
    kinetics_tree(tmp_path / "k400", header="label,youtube_id,start,end,split")
    monkeypatch.setattr(video_examples, "decode_video", lambda *a, **k: pytest.fail("decoded before checking columns"))
    with pytest.raises(AnnotationError, match="expected columns label,youtube_id,time_start,time_end,split"):
        prepare("kinetics", "400", tmp_path / "tfds", tmp_path / "k400")


def test_ssv2_builder(tmp_path):
    root = tmp_path / "ssv2"
    labels = {"Pushing something from left to right": "1", "Pushing something from right to left": "0"}
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "labels.json").write_text(json.dumps(labels))
    (root / "labels" / "train.json").write_text(json.dumps([
        {"id": "11", "label": "pushing a cup from left to right", "template": "Pushing [something] from left to right",
         "placeholders": ["a cup"]},
        {"id": "12", "label": "pushing a pen from right to left", "template": "Pushing [something] from right to left",
         "placeholders": ["a pen"]},
    ]))
    (root / "labels" / "validation.json").write_text(json.dumps([
        {"id": "13", "label": "x", "template": "Pushing [something] from right to left", "placeholders": ["x"]}]))
    for vid in ("11", "12"):
        write_video(root / "videos" / f"{vid}.webm", gradient_clip(5, seed=int(vid)), 12)
    builder = prepare("something_something_v2", "default", tmp_path / "tfds", root)
    assert builder.info.features["label"].names == list(labels)[::-1]  # by the index in labels.json
    train = read_split(builder, "train")
    assert train["11"]["label"] == 1 and train["12"]["label"] == 0
    assert skipped(builder)["13"] == "missing video file"


def test_ucf101_builder_split_configs(tmp_path):
    root = tmp_path / "UCF101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 YoYo\n")
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nYoYo/v_YoYo_g08_c01.avi 2\n")
    (lists / "testlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi\n")
    (lists / "trainlist02.txt").write_text("YoYo/v_YoYo_g01_c01.avi 2\n")
    (lists / "testlist02.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n")
    for rel in ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "YoYo/v_YoYo_g08_c01.avi", "YoYo/v_YoYo_g01_c01.avi"):
        write_video(root / "UCF-101" / rel, gradient_clip(4, 320 // 8 * 2, 320 // 8 * 2), 25)
    split1 = prepare("ucf101_local", "split1", tmp_path / "tfds", root)
    assert {k: v.num_examples for k, v in split1.info.splits.items()} == {"train": 2, "test": 1}
    assert read_split(split1, "test")["v_YoYo_g01_c01"]["label"] == 1
    split2 = prepare("ucf101_local", "split2", tmp_path / "tfds", root)
    assert {k: v.num_examples for k, v in split2.info.splits.items()} == {"train": 1, "test": 1}
    (lists / "classInd.txt").write_text("ApplyEyeMakeup 1\n")
    with pytest.raises(AnnotationError, match="expected '<index> <ClassName>' lines"):
        prepare("ucf101_local", "split3", tmp_path / "tfds", root)


@pytest.mark.slow
def test_synthetic_motion_builder(tmp_path):
    builder = tfds.builder("synthetic_motion/ci", data_dir=str(tmp_path))
    builder.download_and_prepare()
    assert builder.info.features["label"].names == list(CLASSES)
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 240, "test": 80}
    example = next(iter(tfds.as_numpy(builder.as_dataset(split="test").take(1))))
    assert example["video"].shape == (16, 32, 32, 3)


@pytest.mark.slow
def test_two_processes_write_the_same_files_holding_exactly_the_rendered_frames(tmp_path):
    # With H.264 (synthetic_motion 1.0.0 / 1.1.0) two processes writing the same frames gave different files for
    # 5-15% of the clips, depending on the process; the lossless FFV1 files are the same bytes every time.
    size = SyntheticSize(train_per_class=12, test_per_class=0, image_size=32, num_frames=16)
    script = ("import sys; from timesformer_jax.data.synthetic_motion import SyntheticSize, write_synthetic_motion; "
              f"write_synthetic_motion(sys.argv[1], SyntheticSize(**{dataclasses.asdict(size)!r}))")
    for attempt in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / attempt)], check=True, timeout=300)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.mkv"))
    assert len(files) == 12 * len(CLASSES)
    differing = [str(f) for f in files if (tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes()]
    assert differing == []
    label, index = "rotate_clockwise", 5
    rendered = render_clip(label, np.random.default_rng([0, 0, CLASSES.index(label), index]), 32, 16)
    decoded = decode_video(tmp_path / "a" / "train" / label / f"{label}_{index:04d}.mkv", None).frames
    np.testing.assert_array_equal(decoded, rendered)


def test_ordered_map_keeps_the_order_and_a_bounded_number_in_flight():
    import threading
    import time as _time

    from timesformer_jax.data.work_pool import ordered_map

    started, lock = [], threading.Lock()

    def slow_square(x):
        with lock:
            started.append(x)
        _time.sleep(0.002 * (x % 3))  # later items often finish first
        return x * x

    results = []
    for item, value in ordered_map(slow_square, range(40), workers=3):
        with lock:
            # never more than 2 * workers submitted beyond what was handed out
            assert len(started) <= len(results) + 1 + 2 * 3
        results.append((item, value))
    assert results == [(x, x * x) for x in range(40)]


def test_video_folder_build_survives_odd_names_and_unreadable_folders(tmp_path, monkeypatch):
    root = tmp_path / "manual"
    latin1 = os.fsdecode(b"caf\xe9")  # a file name in Latin-1, not UTF-8
    write_video(root / "train" / "cats" / f"{latin1}.mp4", gradient_clip(5), 10)
    write_video(root / "train" / "cats" / "clip.mp4", gradient_clip(6, seed=1), 10)
    write_video(root / "train" / "cats" / "clip.mkv", gradient_clip(4, seed=2), 10)  # same stem, other file
    write_video(root / "train" / os.fsdecode(b"d\xf6gs") / "a.mp4", gradient_clip(3, seed=3), 10)
    write_video(root / "train" / "locked" / "b.mp4", gradient_clip(3, seed=4), 10)
    real_iterdir = Path.iterdir

    def iterdir(self):  # root reads every folder: a permission error is simulated where the build lists one
        if self.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    builder = prepare("video_folder", "default", tmp_path / "tfds", root)
    train = read_split(builder, "train")
    assert sorted(train) == ["cats/caf\\xe9", "cats/clip.mkv", "cats/clip.mp4", "d\\xf6gs/a"]
    assert len(train["cats/clip.mkv"]["video"]) == 4 and len(train["cats/clip.mp4"]["video"]) == 6
    assert "cannot list class folder" in skipped(builder)["locked/"]


def write_corrupt_middle(path, count=60):
    rng = np.random.default_rng(0)
    write_video(path, (np.cumsum(rng.integers(0, 255, (count, 48, 64, 3)), axis=0) // 4).astype(np.uint8), 25)
    data = bytearray(path.read_bytes())
    start, end = int(len(data) * 0.4), int(len(data) * 0.6)
    data[start:end] = np.random.default_rng(1).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_partially_decodable_videos_are_kept_and_listed(tmp_path):
    root = tmp_path / "manual"
    write_video(root / "train" / "cats" / "clean.mp4", gradient_clip(5), 10)
    write_corrupt_middle(root / "train" / "dogs" / "bikes.mp4")
    builder = prepare("video_folder", "default", tmp_path / "tfds", root)
    train = read_split(builder, "train")
    kept = len(train["dogs/bikes"]["video"])
    assert 0 < kept < 60
    lines = (Path(builder.data_dir) / builders.PARTIAL_FILE).read_text().splitlines()
    assert len(lines) == 1
    split, video_id, reason = lines[0].split("\t")
    assert (split, video_id) == ("train", "dogs/bikes") and f"decoded {kept} of the 60 frames" in reason


def test_rebuild_follows_the_source_folder(tmp_path):
    root = tmp_path / "manual"
    for i in range(2):
        write_video(root / "train" / "cats" / f"c{i}.mp4", gradient_clip(3, seed=i), 10)
        write_video(root / "train" / "dogs" / f"d{i}.mp4", gradient_clip(3, seed=9 + i), 10)
    data_dir = tmp_path / "tfds"
    messages = []

    def build(manual, **kwargs):
        builder = builders.dataset_builder("video_folder", str(data_dir))
        return builders.prepare_dataset(builder, manual, log=messages.append, **kwargs)

    assert build(root).info.splits["train"].num_examples == 4
    assert build(root).info.splits["train"].num_examples == 4 and "up to date" in messages[-1]
    write_video(root / "train" / "dogs" / "d2.mp4", gradient_clip(3, seed=20), 10)
    rebuilt = build(root)
    assert "rebuilding" in messages[-1] and "1 file(s) added (train/dogs/d2.mp4)" in messages[-1]
    assert rebuilt.info.splits["train"].num_examples == 5
    assert len(read_split(builders.dataset_builder("video_folder", str(data_dir)), "train")) == 5
    other = tmp_path / "other"
    write_video(other / "train" / "birds" / "b.mp4", gradient_clip(3), 10)
    with pytest.raises(FileExistsError, match="was prepared from .*manual, not .*other"):
        build(other)
    assert build(other, overwrite=True).info.splits["train"].num_examples == 1
    assert "overwrite" in messages[-1]
