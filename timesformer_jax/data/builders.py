"""TFDS builders over users' local copies: `kinetics`, `something_something_v2`, `ucf101_local`, `video_folder`,
and the generated `synthetic_motion`.

Each reads a manual directory (nothing is downloaded), decodes every video with PyAV and stores it as JPEG
frames at the source frame rate, shorter side resized to `short_side` (default 320). Readers then decode only
the frames they sample (`pipeline.py`). Import this module to register the builders:

    import timesformer_jax.data.builders
    builder = tfds.builder("ucf101_local/split1", data_dir=DATA_DIR)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=MANUAL_DIR))

Bad videos (unreadable, truncated, empty, a class folder that cannot be listed) and annotations naming missing
files are skipped and counted, never fatal; the list goes to `skipped.tsv` beside the prepared dataset. Videos
that read only in part (a corrupt section skipped, fewer frames than the header says, a mid-stream size change)
are kept with what decodes and listed in `partial.tsv`. Frames are stored as displayed (rotation applied). Wrong
annotation columns fail at once.

The same build runs on Apache Beam when the download config carries Beam options or a runner
(`DownloadConfig(beam_options=...)`): each video is one work item for Beam's workers, with the same decoding and
the same skip list (`beam_build.py`).
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import shutil
from pathlib import Path

import tensorflow as tf

tf.config.set_visible_devices([], "GPU")  # TF is for input only: keep it off accelerators
import tensorflow_datasets as tfds  # noqa: E402

from timesformer_jax.data import annotations  # noqa: E402
from timesformer_jax.data.source_files import describe_changes, list_sources, read_sources, write_sources  # noqa: E402
from timesformer_jax.data.synthetic_motion import CLASSES, SIZES, write_synthetic_motion  # noqa: E402
from timesformer_jax.data.video_examples import example_or_skip  # noqa: E402
from timesformer_jax.data.work_pool import ordered_map  # noqa: E402

SKIPPED_FILE = "skipped.tsv"
PARTIAL_FILE = "partial.tsv"  # videos kept with what decoded, and why they fell short
DEFAULT_SHORT_SIDE = 320


@dataclasses.dataclass
class VideoConfig(tfds.core.BuilderConfig):
    """short_side: stored frames' shorter side (videos smaller than that are kept at their size);
    jpeg_quality: of the stored frames (TFDS would use 95; 90 reads faster, see docs/data.md)."""

    short_side: int = DEFAULT_SHORT_SIDE
    jpeg_quality: int = 90
    split_index: int = 1  # UCF101 only: which of the three official splits


def with_short_side(config: VideoConfig, short_side: int) -> VideoConfig:
    """A copy of `config` storing frames at another shorter side (its own config name, so data never mixes)."""
    if short_side == config.short_side:
        return config
    return dataclasses.replace(config, name=f"{config.name}_short{short_side}", short_side=short_side)


class LocalVideoBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared machinery: features, decoding, skip accounting. Subclasses say how to read their annotations."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "JPEG frames at the source frame rate."}

    def _entries(self, manual_dir: Path) -> tuple[list[annotations.Entry], list[str]]:
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Video(shape=(None, None, None, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(),
                    "video_id": tfds.features.Text(),
                    "fps": tfds.features.Scalar(dtype=tf.float32),
                }
            ),
            supervised_keys=("video", "label"),
        )

    def _source_dir(self, dl_manager) -> Path:
        """The folder the annotations and videos are read from: the user's manual directory."""
        manual_dir = Path(dl_manager.manual_dir)
        if not manual_dir.is_dir():
            raise FileNotFoundError(f"manual_dir {manual_dir} does not exist; {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return manual_dir

    def _split_generators(self, dl_manager):
        # Annotation errors surface here, before any decoding.
        entries, class_names = self._entries(self._source_dir(dl_manager))
        self.info.features["label"].names = class_names
        names = set(class_names)
        by_split = collections.defaultdict(list)
        for entry in entries:  # what the annotations alone rule out is skipped here, so no split is left empty
            if entry.problem is not None:
                self._record_skip(entry.split, entry.video_id, entry.problem)
            elif entry.path is None:
                self._record_skip(entry.split, entry.video_id, "missing video file")
            elif entry.label is None:
                self._record_skip(entry.split, entry.video_id, "no label (unlabelled test split)")
            elif entry.label not in names:
                self._record_skip(entry.split, entry.video_id, f"label {entry.label!r} is not a class of this dataset")
            else:
                by_split[entry.split].append(entry)
        return {split: self._generate_examples(split, items) for split, items in sorted(by_split.items())}

    def _download_and_prepare(self, dl_manager, download_config):
        # Beam options or a runner ask for a Beam build (TFDS then runs the transforms `_generate_examples`
        # returns); without them the build stays in this process.
        self._use_beam = download_config.beam_options is not None or download_config.beam_runner is not None
        if self.MANUAL_DOWNLOAD_INSTRUCTIONS and download_config.manual_dir:
            # Listed before any decoding: a file changed during the build shows as changed at the next one.
            write_sources(self.data_dir, list_sources(download_config.manual_dir))
        return super()._download_and_prepare(dl_manager, download_config)

    def _generate_examples(self, split: str, entries: list[annotations.Entry]):
        config = self.builder_config
        if getattr(self, "_use_beam", False):
            from timesformer_jax.data.beam_build import examples_from_videos

            return examples_from_videos(split, entries, config.short_side, config.jpeg_quality, str(self.data_dir))
        return self._examples_in_process(split, entries)

    def _examples_in_process(self, split: str, entries: list[annotations.Entry]):
        # Videos are decoded and JPEG-encoded on two threads per core (PyAV and TF release the GIL for part of
        # their work: 1.6x one thread on 2 cores), a bounded number ahead of the writer, handed to TFDS in the
        # entries' order.
        config = self.builder_config

        def read(entry):
            return example_or_skip(entry, config.short_side, config.jpeg_quality)

        for entry, result in ordered_map(read, entries, workers=2 * (os.cpu_count() or 1)):
            if isinstance(result, str):
                self._record_skip(split, entry.video_id, result)
                continue
            example, partial = result
            if partial:
                self._record_line(PARTIAL_FILE, split, entry.video_id, partial)
            yield entry.video_id, example

    def _process_pipeline_result(self, pipeline_result) -> None:
        """After a Beam build: the workers' skip lines into skipped.tsv (`beam_build.collect_skipped`)."""
        from timesformer_jax.data.beam_build import collect_skipped

        count = collect_skipped(str(self.data_dir), SKIPPED_FILE)
        partial = collect_skipped(str(self.data_dir), PARTIAL_FILE)
        logging.info("Beam build: %d video(s) skipped, %d kept in part by the workers", count, partial)

    def _record_skip(self, split: str, video_id: str, reason: str) -> None:
        self._record_line(SKIPPED_FILE, split, video_id, reason)

    def _record_line(self, file_name: str, split: str, video_id: str, reason: str) -> None:
        # Appended as we go (the dataset directory is the build's temporary one until the build succeeds).
        with (Path(self.data_dir) / file_name).open("a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"{split}\t{video_id}\t{reason}\n")


class VideoFolder(LocalVideoBuilder):
    """Users' own videos: `<manual_dir>/<split>/<class>/<video>`, split one of train/validation (val)/test."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = "point manual_dir at a folder <split>/<class>/<video files>"
    BUILDER_CONFIGS = [VideoConfig(name="default", description="frames at shorter side 320")]

    def _entries(self, manual_dir):
        entries = annotations.video_folder_entries(manual_dir)
        return entries, sorted({e.label for e in entries})


class Kinetics(LocalVideoBuilder):
    """Kinetics-400/600/700 from a local copy: annotation CSVs and `<youtube_id>_<start>_<end>.mp4` videos."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "point manual_dir at your Kinetics copy: the annotation CSVs (label,youtube_id,time_start,time_end,split) "
        "and the videos, in class folders or flat"
    )
    BUILDER_CONFIGS = [VideoConfig(name=str(n), description=f"Kinetics-{n}") for n in (400, 600, 700)]

    def _entries(self, manual_dir):
        entries = annotations.kinetics_entries(manual_dir)
        names = sorted({e.label for e in entries if e.label})
        expected = int(self.builder_config.name.split("_")[0])
        if len(names) != expected:
            logging.warning("the Kinetics annotations name %d classes, not %d", len(names), expected)
        return entries, names


class SomethingSomethingV2(LocalVideoBuilder):
    """Something-Something v2: labels.json, train.json, validation.json and `<id>.webm` videos."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = "point manual_dir at a folder holding labels.json, train.json, validation.json and the .webm videos"
    BUILDER_CONFIGS = [VideoConfig(name="default", description="frames at shorter side 320")]

    def _entries(self, manual_dir):
        return annotations.ssv2_entries(manual_dir)


class Ucf101Local(LocalVideoBuilder):
    """UCF101 from a local copy (the TFDS `ucf101` builder downloads; this one reads your files)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = "point manual_dir at UCF-101/ (the .avi videos) and ucfTrainTestlist/ (split files)"
    BUILDER_CONFIGS = [VideoConfig(name=f"split{i}", split_index=i, description=f"official split {i}") for i in (1, 2, 3)]

    def _entries(self, manual_dir):
        return annotations.ucf101_entries(manual_dir, self.builder_config.split_index)


BUILDERS = {
    "kinetics": Kinetics,
    "something_something_v2": SomethingSomethingV2,
    "ucf101_local": Ucf101Local,
    "video_folder": VideoFolder,
}


class SyntheticMotion(LocalVideoBuilder):
    """Generated clips on which frame order matters (see `synthetic_motion.py`): written as .mkv files in the
    video_folder layout, then read back through the same decoder as any local dataset."""

    BUILDER_CONFIGS = [
        VideoConfig(name=size, description=f"{size} size: {spec}") for size, spec in SIZES.items()
    ]
    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {"1.0.0": "JPEG frames at the source frame rate.",
                     "1.1.0": "H.264 clips from frames converted to yuv420p first (fewer clips differ between builds).",
                     "1.2.0": "Lossless FFV1 clips: the rendered frames exactly, the same files on every build. The "
                              "rotating hand starts near 12 o'clock."}

    def _entries(self, manual_dir):
        return annotations.video_folder_entries(manual_dir), list(CLASSES)

    def _source_dir(self, dl_manager) -> Path:
        # No manual download: the videos are generated into the download directory, then read as a video folder.
        videos = Path(dl_manager.download_dir) / f"synthetic_motion_{self.builder_config.name}_{self.version}"
        if not (videos / "complete").exists():
            write_synthetic_motion(videos, self.builder_config.name, seed=0, log=logging.info)
            (videos / "complete").touch()
        return videos


BUILDERS["synthetic_motion"] = SyntheticMotion


def dataset_builder(name: str, data_dir: str | None = None, config: str | None = None,
                    short_side: int | None = None) -> LocalVideoBuilder:
    """The builder of dataset `name` / `config` (default: its first config) in `data_dir`, stored at
    `short_side` (default: as the config says). Unknown names or configs raise ValueError."""
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(BUILDERS)}")
    builder_class = BUILDERS[name]
    configs = {c.name: c for c in builder_class.BUILDER_CONFIGS}
    if config is not None and config not in configs:
        raise ValueError(f"unknown config {config!r} for {name}; expected one of {sorted(configs)}")
    chosen = configs[config] if config else builder_class.BUILDER_CONFIGS[0]
    if short_side:
        chosen = with_short_side(chosen, short_side)
    return builder_class(config=chosen, data_dir=data_dir)


def prepare_dataset(builder: LocalVideoBuilder, manual_dir: str | Path | None = None, *, overwrite: bool = False,
                    beam_options=None, log=logging.info) -> LocalVideoBuilder:
    """Prepare `builder`'s dataset from `manual_dir` (none for synthetic_motion), unless it is prepared already
    from the same folder as it is now.

    A dataset built from a folder that has changed since (files added, removed or modified: `sources.json`) is
    rebuilt, with a line saying why; `overwrite` rebuilds in any case. A dataset directory prepared from another
    source folder is never replaced silently: FileExistsError, unless `overwrite`. `beam_options`: Beam
    PipelineOptions to build on Beam."""
    mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
    what = f"{builder.name}/{builder.builder_config.name} in {builder.data_dir}"
    prepared = Path(builder.data_dir).exists() and bool(builder.info.splits)
    if prepared and overwrite:
        log(f"rebuilding {what}: overwrite asked for")
        mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
    elif prepared and manual_dir and builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        built, now = read_sources(builder.data_dir), list_sources(manual_dir)
        if built is None:
            log(f"{what} was prepared without a list of its source files, so whether {manual_dir} changed since is "
                "unknown: reusing it (pass --overwrite to rebuild)")
        elif built.get("root") != now["root"]:
            raise FileExistsError(
                f"{what} was prepared from {built.get('root')}, not {now['root']}; building here would mix or "
                "replace it: choose another --data_dir for this source (or pass --overwrite to replace it)")
        elif (change := describe_changes(built, now)) is not None:
            log(f"rebuilding {what}: the source folder changed since it was built: {change}")
            mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
        else:
            log(f"{what} is up to date with {now['root']}: reusing it")
    if mode != tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS:
        # A builder made over a prepared dataset holds its metadata (class names): start from an empty directory.
        data_dir_root = Path(builder.data_dir).parents[2]  # <root>/<name>/<config>/<version>
        shutil.rmtree(builder.data_dir)
        builder = type(builder)(config=builder.builder_config, data_dir=str(data_dir_root))
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir and str(manual_dir),
                                                   beam_options=beam_options, download_mode=mode)
    builder.download_and_prepare(download_config=download_config)
    return builder


def prepared_builder(name: str, data_dir: str | None = None, config: str | None = None,
                     short_side: int | None = None) -> LocalVideoBuilder:
    """`dataset_builder(...)` for reading: FileNotFoundError with the command that prepares it when it is not
    prepared."""
    builder = dataset_builder(name, data_dir, config, short_side)
    if not Path(builder.data_dir).exists() or not builder.info.splits:
        command = f"timesformer build-dataset --dataset {name} --config {builder.builder_config.name}"
        if data_dir:
            command += f" --data_dir {data_dir}"
        raise FileNotFoundError(
            f"dataset {name}/{builder.builder_config.name} is not prepared in {builder.data_dir}; prepare it with "
            f"`{command} --manual_dir <your copy>` (synthetic_motion needs no --manual_dir)")
    return builder
