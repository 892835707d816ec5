"""Reading the annotation files of each dataset into a list of (split, video id, video file, label) entries.

Pure file parsing, no decoding: the builders (`builders.py`) turn the entries into TFDS examples. An annotation
file with the wrong columns or format raises `AnnotationError` before any video is touched; an entry whose video
is missing keeps `path=None` and is skipped (and counted) by the builder.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import json
import re
from pathlib import Path

from timesformer_jax.data.video_io import VIDEO_SUFFIXES
from timesformer_jax.user_files import printable

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
_SPLIT_NAMES = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
                "validate": "validation", "validation": "validation", "test": "test", "testing": "test"}


class AnnotationError(ValueError):
    """An annotation file that cannot be what the dataset's format says it is."""


@dataclasses.dataclass(frozen=True)
class Entry:
    split: str  # train / validation / test
    video_id: str
    path: Path | None  # None: the annotation names a file that is not there
    label: str | None
    problem: str | None = None  # why the entry cannot be read, found while listing (the builder skips it)


def split_name(name: str) -> str:
    if name.lower() not in _SPLIT_NAMES:
        raise AnnotationError(f"unknown split name {name!r}; expected one of {sorted(_SPLIT_NAMES)}")
    return _SPLIT_NAMES[name.lower()]


def index_videos(root: Path) -> dict[str, Path]:
    """Every video file under `root`, by file name (the datasets name videos uniquely)."""
    return {p.name: p for p in sorted(root.rglob("*")) if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()}


def _index_by_stem(videos: dict[str, Path]) -> dict[str, Path]:
    return {Path(name).stem: path for name, path in videos.items()}


def video_folder_entries(root: Path) -> list[Entry]:
    """`<root>/<split>/<class>/<video>` (split one of train/val/validation/test).

    A video is named `<class>/<stem>`, or `<class>/<file name>` when another file of the class has the same stem
    (`clip.mp4` next to `clip.mkv`). Names that are not UTF-8 are escaped (`user_files.printable`). A class folder that
    cannot be listed becomes one entry with its `problem`, which the builder skips and reports."""
    entries = []
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in _SPLIT_NAMES]
    if not split_dirs:
        raise AnnotationError(
            f"{root}: expected split folders (train/, validation/ or val/, test/) holding one folder per class; "
            f"found {sorted(p.name for p in root.iterdir())[:10]}"
        )
    for split_dir in split_dirs:
        split = split_name(split_dir.name)
        for class_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            label = printable(class_dir.name)
            try:
                videos = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            except OSError as e:
                entries.append(Entry(split, f"{label}/", None, label,
                                     problem=f"cannot list class folder {printable(str(class_dir))}: "
                                             f"{e.strerror or type(e).__name__}"))
                continue
            stems = collections.Counter(video.stem for video in videos)
            for video in videos:
                name = video.stem if stems[video.stem] == 1 else video.name
                entries.append(Entry(split, f"{label}/{printable(name)}", video, label))
    return entries


def kinetics_entries(root: Path) -> list[Entry]:
    """Kinetics CSVs (`label,youtube_id,time_start,time_end,split`, any extra columns ignored) anywhere under
    `root`, and videos `<youtube_id>_<start:06d>_<end:06d>.<ext>` in class folders or flat."""
    csv_files = sorted(root.rglob("*.csv"))
    if not csv_files:
        raise AnnotationError(f"{root}: no annotation .csv files (expected columns {','.join(KINETICS_COLUMNS)})")
    rows = []
    for csv_file in csv_files:
        with csv_file.open(newline="") as f:
            reader = csv.DictReader(f)
            # `label` may be absent: the test CSVs of some releases have none.
            missing = [c for c in KINETICS_COLUMNS if c != "label" and c not in (reader.fieldnames or [])]
            if missing:
                raise AnnotationError(
                    f"{csv_file}: expected columns {','.join(KINETICS_COLUMNS)}, got "
                    f"{','.join(reader.fieldnames or [])} (missing {', '.join(missing)})"
                )
            rows.extend(reader)
    videos = _index_by_stem(index_videos(root))
    entries = []
    for row in rows:
        try:
            stem = f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"
        except (TypeError, ValueError) as e:
            raise AnnotationError(f"bad time_start/time_end in Kinetics row {row}: {e}") from e
        entries.append(Entry(split_name(row["split"]), stem, videos.get(stem), row.get("label") or None))
    return entries


def ssv2_entries(root: Path) -> tuple[list[Entry], list[str]]:
    """Something-Something v2: `labels.json` (template -> index), `train.json` / `validation.json` (id, template,
    label) and `<id>.webm` videos anywhere under `root`. Returns the entries and the class names by index."""
    def find(name):
        found = sorted(root.rglob(name))
        if not found:
            raise AnnotationError(f"{root}: no {name} (Something-Something v2 annotations)")
        return json.loads(found[0].read_text())

    labels = find("labels.json")
    if not isinstance(labels, dict):
        raise AnnotationError("labels.json: expected an object mapping each template to its class index")
    names = [name for name, _ in sorted(labels.items(), key=lambda item: int(item[1]))]
    videos = _index_by_stem(index_videos(root))
    entries = []
    for split, file_name in (("train", "train.json"), ("validation", "validation.json")):
        for item in find(file_name):
            if not isinstance(item, dict) or not {"id", "template"} <= set(item):
                raise AnnotationError(f"{file_name}: expected objects with 'id', 'template', 'label'; got {item!r}")
            template = item["template"].replace("[", "").replace("]", "")
            if template not in labels:
                raise AnnotationError(f"{file_name}: template {template!r} of video {item['id']} is not in labels.json")
            entries.append(Entry(split, str(item["id"]), videos.get(str(item["id"])), template))
    return entries, names


def ucf101_entries(root: Path, split_index: int) -> tuple[list[Entry], list[str]]:
    """UCF101 with the official `classInd.txt`, `trainlist0N.txt`, `testlist0N.txt` and `.avi` videos."""
    def find(name):
        found = sorted(root.rglob(name))
        if not found:
            raise AnnotationError(f"{root}: no {name} (UCF101 split files from UCF101TrainTestSplits-RecognitionTask)")
        return found[0].read_text().split("\n")

    names = {}
    for line in find("classInd.txt"):
        if line.strip():
            match = re.fullmatch(r"\s*(\d+)\s+(\S+)\s*", line)
            if not match:
                raise AnnotationError(f"classInd.txt: expected '<index> <ClassName>' lines, got {line!r}")
            names[int(match.group(1))] = match.group(2)
    class_names = [names[i] for i in sorted(names)]
    videos = index_videos(root)
    entries = []
    for split, list_name in (("train", f"trainlist0{split_index}.txt"), ("test", f"testlist0{split_index}.txt")):
        for line in find(list_name):
            if not line.strip():
                continue
            relative = line.split()[0]
            label = relative.split("/")[0]
            if label not in class_names:
                raise AnnotationError(f"{list_name}: {relative!r} is not in a class folder named in classInd.txt")
            file_name = relative.split("/")[-1]
            entries.append(Entry(split, Path(file_name).stem, videos.get(file_name), label))
    return entries, class_names
