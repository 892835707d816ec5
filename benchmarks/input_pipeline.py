"""Input pipeline throughput, and the storage comparison behind the builders' design.

    python benchmarks/input_pipeline.py --workdir /tmp/input_bench [--videos 24] [--threads 1 2]

Generates a Kinetics-like set (10 s clips at 30 fps, 640x360 H.264: moving textured scenes), then:

1. JPEG frames in TFDS (a record per video, what the builders store): prepare time with the `video_folder`
   builder at shorter side 320, size on disk, and clips/s of the train pipeline (8 x 224, sampling rate 32,
   jitter 256-320, crop, flip) and of the eval pipeline (3 spatial crops per clip) with TF limited to 1 thread
   and to every core, for each output dtype;
2. the same JPEG frames in the frame store (a record per frame, `data/frame_store.py`): the copy's time and
   size, the same rates, and the bytes a train clip reads in each layout;
3. the alternative, H.264 video re-encoded at shorter side 320 and decoded at read time with PyAV (seek to the
   keyframe before the clip, decode up to its last frame): prepare time, size, clips/s on one core.

Prints a Markdown table (copied into docs/data.md).
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np


def generate_sources(root: Path, count: int, seconds: float = 10.0, fps: float = 30.0) -> list[Path]:
    from timesformer_jax.data.video_io import write_video

    paths = []
    for i in range(count):
        path = root / "train" / f"class_{i % 4}" / f"video_{i:03d}.mp4"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        # A scene with the smoothness of natural video: a coarse random colour field, bilinearly enlarged, plus
        # mild grain, panning at a random velocity.
        coarse = rng.uniform(0, 255, (24, 40, 3))
        rows = np.linspace(0, 23, 440)
        cols = np.linspace(0, 39, 740)
        r0, c0 = np.floor(rows).astype(int).clip(max=22), np.floor(cols).astype(int).clip(max=38)
        fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
        texture = ((coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c0 + 1] * fc) * (1 - fr)
                   + (coarse[r0 + 1][:, c0] * (1 - fc) + coarse[r0 + 1][:, c0 + 1] * fc) * fr)
        texture += rng.normal(0, 4, texture.shape)
        velocity = rng.uniform(-1, 1, size=2)
        frames = np.stack([texture[int(40 + t * velocity[0] / 10):][:360, int(40 + t * velocity[1] / 10):][:, :640]
                           for t in range(int(seconds * fps))]).clip(0, 255).astype(np.uint8)
        write_video(path, frames, fps)
    return paths


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Rate(NamedTuple):
    per_second: float  # clips (or views) per second of wall time
    per_cpu_second: float  # per second of CPU time summed over the process's threads: the rate per busy core


def pipeline_rate(make_dataset, threads: int, clips_per_batch: int, batches: int) -> Rate:
    import tensorflow as tf

    ds = make_dataset()
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(options)
    iterator = iter(ds)
    next(iterator)  # warm-up: graph tracing, file opening, buffers
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    clips = batches * clips_per_batch
    return Rate(clips / (time.perf_counter() - start), clips / (time.process_time() - cpu_start))


def stage_costs(store, config, threads: int, clips: int = 400) -> list[tuple[str, float]]:
    """CPU ms per train clip spent in each stage of the frame store's train pipeline, on `threads` threads: each
    pipeline adds one stage to the previous one, and a stage's cost is the difference in ms per clip."""
    import tensorflow as tf

    from timesformer_jax.data import transforms
    from timesformer_jax.data.pipeline import finish_frames, resampled_dtype, store_reader

    read, length_of, fps_of, _ = store_reader(store, "train")
    videos = store.num_examples("train")

    def jpegs_of(counter):
        video = counter % videos
        key = tf.stack([tf.constant(0, tf.int64), counter])
        seeds = tf.random.experimental.stateless_split(key, 3)
        position = tf.random.stateless_uniform([], seeds[0], dtype=tf.float64)
        indices = transforms.dense_indices(tf.gather(length_of, video), config.num_frames, config.sampling_rate,
                                           position, tf.gather(fps_of, video), config.target_fps)
        return read(video, indices), seeds[2]

    def windows(counter):
        return transforms.decoded_train_window(*jpegs_of(counter), config.crop_size, *config.train_scale)

    def resampled(counter):  # the uint8 pipeline's resample, flip and rounding: one compiled XLA op
        return transforms.crop_window_and_resample(*windows(counter), resampled_dtype(config))

    def finished(counter):
        return finish_frames(resampled(counter), config)

    stages = [("sampling indices + reading the 8 records", lambda c: jpegs_of(c)[0]),
              ("+ decoding the 8 crop windows", lambda c: windows(c)[0]),
              ("+ resampling to 224^2, flip, rounding to uint8", resampled)]
    costs, previous = [], 0.0
    for name, stage in stages + [("+ batching (8) and prefetch", None)]:
        ds = tf.data.Dataset.range(10**9).map(stage or finished, num_parallel_calls=tf.data.AUTOTUNE)
        per_batch = 8 if stage is None else 1
        if stage is None:
            ds = ds.batch(8).prefetch(tf.data.AUTOTUNE)
        # CPU time: the compiled resampler may run on more threads than tf.data's pool
        ms = 1000 / pipeline_rate(lambda: ds, threads, per_batch, clips // per_batch).per_cpu_second
        costs.append((name, ms - previous))
        previous = ms
    costs.append(("total", previous))
    return costs


def reencode(sources: list[Path], target: Path, short_side: int) -> None:
    from timesformer_jax.data.video_io import decode_video, write_video

    for path in sources:
        video = decode_video(path, short_side)
        write_video(target / path.name, video.frames, video.fps)


def pyav_clip(path: Path, indices: np.ndarray) -> np.ndarray:
    """Decode frames `indices` (sorted) of a video: seek to the keyframe before the first, decode to the last."""
    import av

    wanted = set(int(i) for i in indices)
    frames = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        start_time = int(indices[0] / rate / stream.time_base)
        container.seek(start_time, stream=stream, backward=True)
        for frame in container.decode(stream):
            index = int(round(frame.pts * stream.time_base * rate))
            if index in wanted:
                frames[index] = frame.to_ndarray(format="rgb24")
            if index >= indices[-1]:
                break
    return np.stack([frames.get(int(i), next(iter(frames.values()))) for i in indices])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count()])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "uint8"], choices=["float32", "bfloat16", "uint8"],
                        help="pipeline output: host-normalised floats, or uint8 normalised on the device")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    rows = []

    start = time.perf_counter()
    sources = generate_sources(workdir / "sources", args.videos)
    print(f"sources: {len(sources)} videos, {directory_size(workdir / 'sources') / 2**20:.1f} MiB "
          f"({time.perf_counter() - start:.1f} s)", flush=True)

    import tensorflow_datasets as tfds

    import timesformer_jax.data.builders  # noqa: F401
    from timesformer_jax.data.frame_store import FrameStore, write_frame_store
    from timesformer_jax.data.pipeline import ClipConfig, eval_dataset, train_dataset
    from timesformer_jax.data.sampling import dense_indices

    data_dir = workdir / "tfds"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(workdir / "frames", ignore_errors=True)
    start = time.perf_counter()
    builder = tfds.builder("video_folder", data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(workdir / "sources")))
    jpeg_prepare = time.perf_counter() - start
    jpeg_size = directory_size(data_dir)
    print(f"JPEG frames: prepared in {jpeg_prepare:.1f} s, {jpeg_size / 2**20:.1f} MiB", flush=True)

    start = time.perf_counter()
    store_root = write_frame_store(builder, workdir / "frames", log=lambda message: None)
    store_prepare = time.perf_counter() - start
    store_size = directory_size(store_root)
    print(f"frame store: copied in {store_prepare:.1f} s, {store_size / 2**20:.1f} MiB", flush=True)
    whole_video_bytes = builder.info.splits["train"].num_bytes / builder.info.splits["train"].num_examples

    layouts = [("JPEG frames, TFDS (a record per video)", builder, jpeg_prepare, jpeg_size),
               ("JPEG frames, frame store (a record per frame)", FrameStore(store_root), jpeg_prepare + store_prepare,
                store_size)]
    for dtype in args.dtypes:
        config = ClipConfig(dtype=dtype)  # the official Kinetics-400 settings: 8 x 224, rate 32, jitter 256-320
        for layout, source, prepare, size in layouts:
            for threads in args.threads:
                train = pipeline_rate(lambda: train_dataset(source, "train", args.batch_size, config, process_index=0,
                                                            process_count=1), threads, args.batch_size, args.batches)
                evaluation = pipeline_rate(lambda: eval_dataset(source, "train", args.batch_size, config,
                                                                process_index=0, process_count=1).repeat(),
                                           threads, args.batch_size, args.batches)
                rows.append((f"{layout}, {dtype} out", threads, prepare, size, train, evaluation))
                print(f"{layout}, {dtype}, {threads} thread(s): train {train.per_second:.1f} clips/s "
                      f"({train.per_cpu_second:.1f} per CPU-second), eval {evaluation.per_second:.1f} views/s "
                      f"({evaluation.per_cpu_second:.1f} per CPU-second)", flush=True)

    store = FrameStore(store_root)
    clips = 64
    for _ in tfds.as_numpy(train_dataset(store, "train", 8, ClipConfig(dtype="uint8"), process_index=0,
                                         process_count=1).take(clips // 8)):
        pass
    # prefetching reads ahead of what was taken: per record read, not per clip taken
    clip_bytes = store.bytes_read / store.records_read * ClipConfig().num_frames
    print(f"bytes read per train clip: {whole_video_bytes / 2**20:.2f} MiB (TFDS: the whole video's record), "
          f"{clip_bytes / 2**10:.0f} KiB (frame store: {ClipConfig().num_frames} records)", flush=True)

    costs = stage_costs(FrameStore(store_root), ClipConfig(dtype="uint8"), threads=1)
    print("\nwhere a train clip's time goes (frame store, uint8 out, 1 thread; CPU ms per clip):")
    for name, ms in costs:
        print(f"  {name:<45} {ms:6.2f}")

    video_dir = workdir / "h264_320"
    shutil.rmtree(video_dir, ignore_errors=True)
    start = time.perf_counter()
    reencode(sources, video_dir, 320)
    video_prepare = time.perf_counter() - start
    video_size = directory_size(video_dir)
    rng = np.random.default_rng(0)
    videos = sorted(video_dir.glob("*.mp4"))
    start, cpu_start, clips = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - start < 10:
        indices = dense_indices(300, 8, 32, rng.random(), fps=30)
        pyav_clip(videos[clips % len(videos)], indices)
        clips += 1
    video_rate = Rate(clips / (time.perf_counter() - start), clips / (time.process_time() - cpu_start))
    rows.append(("H.264 at 320, PyAV decode (decode only, no augmentation)", 1, video_prepare, video_size,
                 video_rate, Rate(float("nan"), float("nan"))))
    print(f"H.264: prepared in {video_prepare:.1f} s, {video_size / 2**20:.1f} MiB, "
          f"{video_rate.per_second:.1f} clips/s")

    print("\n| storage | threads | prepare s | MiB on disk | train clips/s | per CPU-s | eval views/s | per CPU-s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, threads, prepare, size, train, evaluation in rows:
        print(f"| {name} | {threads} | {prepare:.1f} | {size / 2**20:.1f} | {train.per_second:.1f} | "
              f"{train.per_cpu_second:.1f} | {evaluation.per_second:.1f} | {evaluation.per_cpu_second:.1f} |")


if __name__ == "__main__":
    main()
