"""Frame-addressable storage: every stored frame is its own ArrayRecord record, so a clip reads its sampled
frames and nothing else (a TFDS example holds a whole video: 300 JPEGs, ~11 MB, for the 8 a clip uses).

Written from a prepared TFDS dataset (`write_frame_store`; the JPEG bytes are copied, not re-encoded), into
`<the TFDS dataset's folder>/frames/` by default:

    metadata.json              format_version, class_names, source ("name/config:version"), per split: videos,
                               frames, shards
    <split>/videos.npz         per video, in the TFDS split's order: video_id (str), label (int32), fps (float32),
                               num_frames (int32), shard (int32), first_record (int64, the video's first frame
                               in its shard; its frames follow in order)
    <split>/frames-SSSSS-of-NNNNN.array_record    one JPEG per record, `group_size:1` (random access reads
                               one record), uncompressed (JPEG does not compress further)

Frame f of video v is record `first_record[v] + f` of shard `shard[v]`. `FrameStore.read_frames` reads exactly the
records asked for and counts them (`records_read`, `bytes_read`). The pipelines take a `FrameStore` wherever
they take a TFDS builder (`pipeline.train_dataset` / `eval_dataset`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from timesformer_jax.data.work_pool import process_map

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
INDEX_FILE = "videos.npz"
WRITE_OPTIONS = "group_size:1,uncompressed"
READ_OPTIONS = "readahead_buffer_size:0,max_parallelism:0"  # ArrayRecord's setting for random access
VIDEOS_PER_SHARD = 1000


def frame_store_dir(builder) -> Path:
    """Where `write_frame_store` puts the frames of a prepared TFDS builder: beside its TFDS files."""
    return Path(builder.data_dir) / "frames"


def shard_name(index: int, count: int) -> str:
    return f"frames-{index:05d}-of-{count:05d}.array_record"


@dataclasses.dataclass(frozen=True)
class SplitIndex:
    """The videos of one split, as arrays of length V (see the module docstring)."""

    video_id: np.ndarray
    label: np.ndarray
    fps: np.ndarray
    num_frames: np.ndarray
    shard: np.ndarray
    first_record: np.ndarray
    shard_paths: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.video_id)


class FrameStore:
    """A written frame store, open for random access. Thread-safe: each thread opens its own readers."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        metadata_file = self.root / METADATA_FILE
        if not metadata_file.exists():
            raise FileNotFoundError(f"no frame store in {self.root} ({METADATA_FILE} is missing); write one with "
                                    "`timesformer build-dataset ... --layout frames`")
        metadata = json.loads(metadata_file.read_text())
        if metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"frame store {self.root} has format_version {metadata.get('format_version')}; this "
                             f"code reads {FORMAT_VERSION}: write it again with --layout frames")
        self.metadata = metadata
        self.class_names: list[str] = list(metadata["class_names"])
        self.splits: dict[str, SplitIndex] = {name: self._load_split(name) for name in metadata["splits"]}
        self._local = threading.local()
        self._lock = threading.Lock()
        self.records_read = 0
        self.bytes_read = 0

    def _load_split(self, name: str) -> SplitIndex:
        arrays = np.load(self.root / name / INDEX_FILE)
        count = self.metadata["splits"][name]["shards"]
        paths = tuple(str(self.root / name / shard_name(i, count)) for i in range(count))
        return SplitIndex(**{key: arrays[key] for key in arrays.files}, shard_paths=paths)

    def split(self, name: str) -> SplitIndex:
        if name not in self.splits:
            raise ValueError(f"frame store {self.root} has no split {name!r}; it has {sorted(self.splits)} (TFDS "
                             "slices such as 'train[:90%]' need the TFDS layout)")
        return self.splits[name]

    def num_examples(self, split: str) -> int:
        return len(self.split(split))

    def read_frames(self, split: str, video: int, indices) -> list[bytes]:
        """The JPEG bytes of frames `indices` (any order, repeats allowed) of video `video` of `split`."""
        index = self.split(split)
        frames = np.asarray(indices, np.int64)
        length = int(index.num_frames[video])
        if frames.size and (frames.min() < 0 or frames.max() >= length):
            raise IndexError(f"video {index.video_id[video]} has {length} frames, asked for {frames.tolist()}")
        reader = self._reader(index.shard_paths[int(index.shard[video])])
        records = reader.read((frames + int(index.first_record[video])).tolist())
        with self._lock:
            self.records_read += len(records)
            self.bytes_read += sum(len(r) for r in records)
        return records

    def _reader(self, path: str):
        from array_record.python.array_record_module import ArrayRecordReader

        readers = self._local.__dict__.setdefault("readers", {})
        if path not in readers:
            readers[path] = ArrayRecordReader(path, READ_OPTIONS)
        return readers[path]


def write_frame_store(builder, root: str | os.PathLike | None = None, *, workers: int = 1,
                      videos_per_shard: int = VIDEOS_PER_SHARD, log=print) -> Path:
    """Copy every stored frame of the prepared TFDS `builder` into a frame store at `root` (default
    `frame_store_dir(builder)`) and return its path. Shards (`videos_per_shard` videos each, in the split's
    order) are independent work items for `workers` processes; the layout does not depend on `workers`. Written
    into a temporary folder renamed at the end, so an interrupted write leaves no store that passes for whole.
    An existing store of the same source is kept."""
    root = Path(root) if root is not None else frame_store_dir(builder)
    source = f"{builder.name}/{builder.builder_config.name}:{builder.version}"
    if (root / METADATA_FILE).exists():
        existing = json.loads((root / METADATA_FILE).read_text())
        if existing.get("source") == source and existing.get("format_version") == FORMAT_VERSION:
            log(f"frame store {root} already written from {source}")
            return root
        raise FileExistsError(f"{root} holds a frame store of {existing.get('source')}, not {source}: remove it first")
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    jobs = []
    for split, info in sorted(builder.info.splits.items()):
        count = max(1, math.ceil(info.num_examples / videos_per_shard))
        (partial / split).mkdir(parents=True)
        for i in range(count):
            lo, hi = info.num_examples * i // count, info.num_examples * (i + 1) // count
            jobs.append((str(builder.data_dir), split, lo, hi, str(partial / split / shard_name(i, count))))
    started = time.perf_counter()
    rows: dict[str, list] = {}
    for done, ((_, split, *_), shard_rows) in enumerate(zip(jobs, process_map(_write_shard, jobs, workers)), 1):
        rows.setdefault(split, []).append(shard_rows)
        log(f"frame store: shard {done}/{len(jobs)} ({split}, {len(shard_rows['label'])} videos, "
            f"{int(np.sum(shard_rows['num_frames']))} frames) after {time.perf_counter() - started:.0f} s")
    splits = {}
    for split, shards in rows.items():
        index = {key: np.concatenate([s[key] for s in shards]) for key in shards[0]}
        index["shard"] = np.concatenate([np.full(len(s["label"]), i, np.int32) for i, s in enumerate(shards)])
        np.savez(partial / split / INDEX_FILE, **index)
        splits[split] = {"videos": len(index["label"]), "frames": int(index["num_frames"].sum()),
                         "shards": len(shards)}
    metadata = {"format_version": FORMAT_VERSION, "source": source,
                "class_names": list(builder.info.features["label"].names), "splits": splits}
    (partial / METADATA_FILE).write_text(json.dumps(metadata, indent=1) + "\n")
    partial.rename(root)
    return root


def _write_shard(job) -> dict:
    """Videos [lo, hi) of `split` of the TFDS dataset in `data_dir` -> one ArrayRecord file; their index rows."""
    data_dir, split, lo, hi, path = job
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    import tensorflow_datasets as tfds
    from array_record.python.array_record_module import ArrayRecordWriter

    builder = tfds.builder_from_directory(data_dir)
    examples = builder.as_dataset(split=f"{split}[{lo}:{hi}]", shuffle_files=False,
                                  decoders={"video": tfds.decode.SkipDecoding()})
    rows = {"video_id": [], "label": [], "fps": [], "num_frames": [], "first_record": []}
    writer = ArrayRecordWriter(path, WRITE_OPTIONS)
    written = 0
    try:
        for example in tfds.as_numpy(examples):
            frames = example["video"]
            for jpeg in frames:
                writer.write(jpeg)
            rows["video_id"].append(example["video_id"].decode())
            rows["label"].append(example["label"])
            rows["fps"].append(example["fps"])
            rows["num_frames"].append(len(frames))
            rows["first_record"].append(written)
            written += len(frames)
    finally:
        writer.close()
    return {"video_id": np.array(rows["video_id"], dtype=str), "label": np.array(rows["label"], np.int32),
            "fps": np.array(rows["fps"], np.float32), "num_frames": np.array(rows["num_frames"], np.int32),
            "first_record": np.array(rows["first_record"], np.int64)}
