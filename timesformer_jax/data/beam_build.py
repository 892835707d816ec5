"""The builders' example generation as an Apache Beam transform: the same decoding and skip accounting as the
in-process build, spread over Beam's workers (the local multi-process runner, Dataflow, Spark, Flink).

TFDS runs it when a build is given Beam options (`DownloadConfig(beam_options=...)`, `timesformer build-dataset
--beam_options`): `LocalVideoBuilder._generate_examples` then returns `examples_from_videos(...)` instead of a
generator. Each video becomes one example through `video_examples.example_or_skip`, exactly as in process. A video that
cannot be decoded goes to the `skipped` output, one `split<TAB>video_id<TAB>reason` line, written as text shards
under `<dataset dir>/skipped-beam/` (a video kept in part, to the `partial` output and `partial-beam/`), and is counted by the Beam counter `timesformer_jax:skipped_videos`
(examples: `timesformer_jax:examples`); when the pipeline has finished, `collect_skipped` appends the shards'
lines to `skipped.tsv`, sorted, and removes them, so the list is the same as the in-process build's.

Imported only when Beam is asked for: apache-beam is an optional dependency (the `beam` extra).
"""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import tensorflow as tf

from timesformer_jax.data.video_examples import example_or_skip

COUNTER_NAMESPACE = "timesformer_jax"


class DecodeVideo(beam.DoFn):
    """annotations.Entry -> (video_id, example), or a skip line on the `skipped` output."""

    def __init__(self, split: str, short_side: int, jpeg_quality: int):
        self.split, self.short_side, self.jpeg_quality = split, short_side, jpeg_quality

    def process(self, entry):
        result = example_or_skip(entry, self.short_side, self.jpeg_quality)
        if isinstance(result, str):
            beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "skipped_videos").inc()
            yield beam.pvalue.TaggedOutput("skipped", f"{self.split}\t{entry.video_id}\t{result}")
            return
        example, partial = result
        if partial:
            yield beam.pvalue.TaggedOutput("partial", f"{self.split}\t{entry.video_id}\t{partial}")
        beam.metrics.Metrics.counter(COUNTER_NAMESPACE, "examples").inc()
        yield entry.video_id, example


@beam.ptransform_fn
def examples_from_videos(pipeline, split: str, entries, short_side: int, jpeg_quality: int, dataset_dir: str):
    """PBegin -> PCollection of (video_id, example) for `entries` of `split`; skip lines to text shards."""
    results = (
        pipeline
        | "Entries" >> beam.Create(entries)
        | "Spread" >> beam.Reshuffle()  # one video per work item, whatever the runner's initial split
        | "Decode" >> beam.ParDo(DecodeVideo(split, short_side, jpeg_quality)).with_outputs(
            "skipped", "partial", main="examples")
    )
    for kind in ("skipped", "partial"):
        _ = results[kind] | f"Write{kind.title()}" >> beam.io.WriteToText(
            str(Path(dataset_dir) / shards_dir(f"{kind}.tsv") / split), file_name_suffix=".tsv")
    return results.examples


def shards_dir(list_file: str) -> str:
    """Where the workers write the lines of `list_file` (skipped.tsv, partial.tsv) as text shards."""
    return f"{Path(list_file).stem}-beam"


def collect_skipped(dataset_dir: str, skipped_file: str) -> int:
    """Append the Beam workers' lines for `skipped_file` (skip lines, or partial-video lines for partial.tsv),
    sorted, to it and delete their shards; returns how many.
    Works on any filesystem TF reads (local, gs://)."""
    shard_dir = f"{dataset_dir}/{shards_dir(skipped_file)}"
    if not tf.io.gfile.isdir(shard_dir):
        return 0
    lines = []
    for name in sorted(tf.io.gfile.listdir(shard_dir)):
        with tf.io.gfile.GFile(f"{shard_dir}/{name}") as f:
            lines.extend(line.rstrip("\n") for line in f if line.strip())
    if lines:
        path = f"{dataset_dir}/{skipped_file}"
        existing = tf.io.gfile.GFile(path).read() if tf.io.gfile.exists(path) else ""
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(existing + "".join(f"{line}\n" for line in sorted(lines)))
    tf.io.gfile.rmtree(shard_dir)
    return len(lines)


def pipeline_options(spec: str):
    """`"runner=DirectRunner,direct_num_workers=2"` -> beam PipelineOptions (each item a `--key=value` flag)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = [f"--{item.strip().lstrip('-')}" for item in spec.split(",") if item.strip()]
    bad = [flag for flag in flags if "=" not in flag]
    if bad:
        raise ValueError(f"--beam_options takes comma-separated key=value pairs (runner=DataflowRunner,"
                         f"project=...), got {bad}")
    return PipelineOptions(flags)
