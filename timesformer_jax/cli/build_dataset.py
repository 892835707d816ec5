"""Prepare a TFDS video dataset from local files (or generate the embedded one).

    timesformer build-dataset --dataset kinetics --config 400 --manual_dir ~/kinetics400 --data_dir ~/tfds
    timesformer build-dataset --dataset something_something_v2 --manual_dir ~/ssv2 --data_dir ~/tfds
    timesformer build-dataset --dataset ucf101_local --config split1 --manual_dir ~/UCF101 --data_dir ~/tfds
    timesformer build-dataset --dataset video_folder --manual_dir ~/my_videos --data_dir ~/tfds
    timesformer build-dataset --dataset synthetic_motion --config ci --data_dir ~/tfds

Frames are stored as JPEG at the source frame rate, as displayed (rotation applied), shorter side `--short_side`
(default 320). One bad file never stops the build: it is skipped and listed in skipped.tsv beside the data; a
file that decodes only in part is kept with what decodes and listed in partial.tsv. Ends with a summary:
examples per split, skipped videos by reason, partial videos. Rerunning reuses the prepared dataset only while
--manual_dir is unchanged (sources.json beside the data lists its files, sizes and times); a changed folder is
rebuilt, with a line saying why, and a dataset prepared from another folder is never replaced (choose another
--data_dir, or --overwrite).
`--beam_options "runner=...,..."` runs the same build on Apache Beam (the local multi-process runner,
Dataflow, Spark, Flink; docs/data.md). `--layout frames` then copies the frames into a frame store beside the
TFDS files (a record per frame, so a training clip reads only its frames; `config.dataset.layout = "frames"`
reads it), with `--workers` processes.
"""
import collections
import sys
from pathlib import Path

from absl import flags


from timesformer_jax.cli.absl_command import run_absl
from timesformer_jax.flag_spelling import absl_flags_parser
from timesformer_jax.data.builders import BUILDERS, PARTIAL_FILE, SKIPPED_FILE, dataset_builder, prepare_dataset

_DATASET = flags.DEFINE_enum("dataset", None, sorted(BUILDERS), "Dataset builder.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Your local copy of the dataset (not for synthetic_motion).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory to write the prepared dataset into.")
_CONFIG = flags.DEFINE_string("config", None, "Builder config (kinetics: 400/600/700; ucf101_local: split1-3; "
                              "synthetic_motion: ci/demo); default: the first.")
_SHORT_SIDE = flags.DEFINE_integer("short_side", None, "Shorter side of stored frames (default 320).")
_BEAM_OPTIONS = flags.DEFINE_string(
    "beam_options", None, "Build on Apache Beam with these pipeline options, comma-separated key=value "
    "(runner=DirectRunner,direct_running_mode=multi_processing,direct_num_workers=8; or runner=DataflowRunner,"
    "project=...,region=...,temp_location=gs://...). Needs the beam extra. Default: in this process.")
_LAYOUT = flags.DEFINE_enum("layout", "tfds", ["tfds", "frames"], "tfds: the TFDS dataset only (a record per "
                            "video); frames: also write the frame store (a record per frame) beside it.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Rebuild even when the prepared dataset is up to date with "
                                "--manual_dir, or was prepared from another folder.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Processes writing the frame store's shards (--layout frames).")
flags.mark_flags_as_required(["dataset", "data_dir"])


def build(dataset: str, data_dir: str, manual_dir: str | None, config: str | None, short_side: int | None,
          beam_options: str | None = None, overwrite: bool = False):
    builder = dataset_builder(dataset, data_dir, config, short_side)
    if dataset != "synthetic_motion" and not manual_dir:
        raise ValueError(f"--manual_dir is required for {dataset}: {BUILDERS[dataset].MANUAL_DOWNLOAD_INSTRUCTIONS}")
    if manual_dir and not Path(manual_dir).is_dir():
        raise ValueError(f"--manual_dir {manual_dir} is not a directory")
    options = None
    if beam_options:
        try:
            from timesformer_jax.data.beam_build import pipeline_options
        except ImportError as e:
            raise ValueError(f"--beam_options needs Apache Beam: pip install 'timesformer_jax[beam]' ({e})") from None
        options = pipeline_options(beam_options)
    return prepare_dataset(builder, manual_dir, overwrite=overwrite, beam_options=options, log=print)


def summary(builder) -> str:
    lines = [f"{builder.name}/{builder.builder_config.name} prepared in {builder.data_dir}"]
    for name, split in sorted(builder.info.splits.items()):
        lines.append(f"  {name:<11} {split.num_examples:>8} examples  {split.num_bytes / 2**20:9.1f} MiB")
    skipped_file = Path(builder.data_dir) / SKIPPED_FILE
    skipped = [line.split("\t") for line in skipped_file.read_text().splitlines()] if skipped_file.exists() else []
    lines.append(f"  skipped     {len(skipped):>8}" + (f"  (list: {skipped_file})" if skipped else ""))
    reasons = collections.Counter((split, _reason_kind(reason)) for split, _, reason in skipped)
    lines.extend(f"    {split:<9} {count:>6}  {kind}" for (split, kind), count in sorted(reasons.items()))
    partial_file = Path(builder.data_dir) / PARTIAL_FILE
    partial = partial_file.read_text().splitlines() if partial_file.exists() else []
    if partial:
        lines.append(f"  partial     {len(partial):>8}  (kept with the frames that decode; list: {partial_file})")
    return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only by file name."""
    for kind in ("missing video file", "no label", "is empty", "no video stream", "cannot decode", "no decodable"):
        if kind in reason:
            return kind
    return reason


def main(argv):
    del argv
    import logging

    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # Beam's workers log every bundle at INFO
    try:
        builder = build(_DATASET.value, _DATA_DIR.value, _MANUAL_DIR.value, _CONFIG.value, _SHORT_SIDE.value,
                        _BEAM_OPTIONS.value, _OVERWRITE.value)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary(builder))
    if _LAYOUT.value == "frames":
        from timesformer_jax.data.frame_store import FrameStore, write_frame_store

        try:
            root = write_frame_store(builder, workers=_WORKERS.value)
        except FileExistsError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        store = FrameStore(root)
        print(f"frame store in {root}")
        for name, info in sorted(store.metadata["splits"].items()):
            print(f"  {name:<11} {info['videos']:>8} videos  {info['frames']:>10} frames  {info['shards']:>4} shards")
    return 0


def run(argv: list[str] | None = None) -> None:
    """`timesformer build-dataset ARGS` (argv: ARGS); exits with the command's status."""
    run_absl(main, __doc__, "build-dataset", argv, absl_flags_parser)
