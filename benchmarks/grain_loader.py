"""The training input on grain, over the same ArrayRecord frame store, against tf.data: the measurement behind
keeping tf.data (docs/data.md). grain is not a dependency of the package: `pip install grain` first.

    python benchmarks/grain_loader.py --store /tmp/input_bench/frames [--batches 40] [--workers 0 2]

The store is one `benchmarks/input_pipeline.py` writes (`<workdir>/frames`). Both loaders make the same clips'
work: 8 frames sampled by the official dense rule, their records read, the crop windows decoded and resampled
(jitter 256-320, crop 224, flip) to uint8 by the same TensorFlow function. tf.data runs that function inside its
graph on its own thread pool; grain reads the records with its `ArrayRecordDataSource` and calls the function,
traced once, from its Python map, in process (`--workers 0`) or in N worker processes (grain's multiprocessing
prefetch). Under `taskset -c 0` with 0 workers and 1 tf.data thread both are held to one core.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from input_pipeline import pipeline_rate  # noqa: E402


class GrainClips:
    """A picklable clip maker for grain's map: (counter) -> {'video': uint8 (T, crop, crop, 3), 'label'}."""

    def __init__(self, store_root: str, seed: int = 0):
        self.store_root, self.seed = store_root, seed
        self._state = None

    def _open(self):
        import grain
        import tensorflow as tf

        from timesformer_jax.data import transforms
        from timesformer_jax.data.frame_store import FrameStore
        from timesformer_jax.data.pipeline import ClipConfig

        config = ClipConfig(dtype="uint8")
        index = FrameStore(self.store_root).split("train")
        # the source numbers the records of all shards in order: a shard's first key is the records before it
        per_shard = np.bincount(index.shard, weights=index.num_frames, minlength=len(index.shard_paths))
        shard_start = np.concatenate([[0], np.cumsum(per_shard)[:-1]]).astype(np.int64)
        crop = tf.function(
            lambda jpegs, seed: transforms.random_train_crop_jpeg(jpegs, seed, config.crop_size, *config.train_scale,
                                                                  config.flip, tf.uint8),
            input_signature=[tf.TensorSpec([config.num_frames], tf.string), tf.TensorSpec([2], tf.int64)])
        source = grain.sources.ArrayRecordDataSource([str(p) for p in index.shard_paths])
        self._state = (config, index, shard_start, crop, source, tf)

    def __call__(self, counter: int) -> dict:
        from timesformer_jax.data.sampling import dense_indices

        if self._state is None:
            self._open()
        config, index, shard_start, crop, source, tf = self._state
        rng = np.random.default_rng([self.seed, counter])
        video = int(rng.integers(len(index.num_frames)))
        frames = dense_indices(int(index.num_frames[video]), config.num_frames, config.sampling_rate, rng.random(),
                               fps=float(index.fps[video]), target_fps=config.target_fps)
        keys = shard_start[index.shard[video]] + int(index.first_record[video]) + np.asarray(frames, np.int64)
        jpegs = source.__getitems__(keys.tolist())
        clip = crop(tf.constant(jpegs), tf.constant(rng.integers(0, 2**31, 2), tf.int64))
        return {"video": clip.numpy(), "label": int(index.label[video])}


def grain_rate(store_root: str, workers: int, batch_size: int, batches: int):
    import grain

    ds = grain.MapDataset.range(10**9).map(GrainClips(store_root)).batch(batch_size).to_iter_dataset()
    if workers:
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    iterator = iter(ds)
    next(iterator)  # warm-up: tracing, compiling, opening the shards, starting the workers
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    clips = batches * batch_size
    # worker processes' CPU time is not this process's: for them only the wall rate means anything
    return clips / (time.perf_counter() - start), (clips / (time.process_time() - cpu_start)) if not workers else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="a frame store folder (metadata.json, train/)")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="grain worker processes (0: none)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="tf.data threads")
    args = parser.parse_args()
    try:
        import grain  # noqa: F401
    except ImportError:
        raise SystemExit("grain is not installed: pip install grain")
    from absl import flags

    flags.FLAGS(sys.argv[:1])  # grain's worker processes read its absl flags: their defaults

    from timesformer_jax.data.frame_store import FrameStore
    from timesformer_jax.data.pipeline import ClipConfig, train_dataset

    store = FrameStore(args.store)
    rows = []
    for threads in args.threads:
        rate = pipeline_rate(lambda: train_dataset(store, "train", args.batch_size, ClipConfig(dtype="uint8"),
                                                   process_index=0, process_count=1), threads, args.batch_size,
                             args.batches)
        rows.append((f"tf.data, {threads} thread(s)", rate.per_second, rate.per_cpu_second))
        print(rows[-1], flush=True)
    for workers in args.workers:
        per_second, per_cpu_second = grain_rate(args.store, workers, args.batch_size, args.batches)
        rows.append((f"grain, {workers} worker process(es)" if workers else "grain, in process", per_second,
                     per_cpu_second))
        print(rows[-1], flush=True)
    print("\n| loader | train clips/s | per CPU-s |\n|---|---|---|")
    for name, per_second, per_cpu_second in rows:
        print(f"| {name} | {per_second:.1f} | {'-' if per_cpu_second is None else f'{per_cpu_second:.1f}'} |")


if __name__ == "__main__":
    main()
