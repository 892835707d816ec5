"""Dataset builds on Apache Beam: the DirectRunner in multi-processing mode on 2 workers gives the examples,
split sizes and skip list of the in-process build."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from test_data_builders import gradient_clip, kinetics_tree, read_split
from timesformer_jax.data import builders
from timesformer_jax.data.beam_build import pipeline_options, shards_dir
from timesformer_jax.data.video_io import write_video

TWO_WORKERS = "runner=DirectRunner,direct_running_mode=multi_processing,direct_num_workers=2"


def build(data_dir, manual_dir, beam_options=None):
    builder = tfds.builder("kinetics/400", data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), beam_options=beam_options))
    return builder


def skip_lines(builder):
    return sorted((builder_dir(builder) / builders.SKIPPED_FILE).read_text().splitlines())


def builder_dir(builder):
    from pathlib import Path

    return Path(builder.data_dir)


@pytest.mark.slow
def test_beam_build_equals_the_in_process_build(tmp_path):
    manual = tmp_path / "k400"
    kinetics_tree(manual)  # 3 good videos, one corrupt (a worker skips it), one missing (the driver skips it)
    extra = []
    for i in range(5):  # enough work items for both workers
        write_video(manual / "train" / "zumba" / f"x{i}_000000_000010.mp4", gradient_clip(3 + i, seed=10 + i), 25)
        extra.append(f"zumba,x{i},0,10,train")
    (manual / "train" / "zumba" / "bad_000000_000010.mp4").write_bytes(b"garbage" * 40)
    extra.append("zumba,bad,0,10,train")
    csv = manual / "annotations" / "train.csv"
    csv.write_text(csv.read_text() + "\n".join(extra) + "\n")

    in_process = build(tmp_path / "in_process", manual)
    on_beam = build(tmp_path / "beam", manual, pipeline_options(TWO_WORKERS))

    sizes = {k: v.num_examples for k, v in in_process.info.splits.items()}
    assert sizes == {"train": 7, "validation": 1}
    assert {k: v.num_examples for k, v in on_beam.info.splits.items()} == sizes
    assert on_beam.info.features["label"].names == in_process.info.features["label"].names
    for split in sizes:
        ours, theirs = read_split(in_process, split), read_split(on_beam, split)
        assert sorted(ours) == sorted(theirs)
        for video_id, example in ours.items():
            other = theirs[video_id]
            assert other["label"] == example["label"] and other["fps"] == pytest.approx(example["fps"])
            assert len(other["video"]) == len(example["video"])
            for a, b in zip(example["video"], other["video"]):
                np.testing.assert_array_equal(tf.io.decode_jpeg(a).numpy(), tf.io.decode_jpeg(b).numpy())
    skipped = skip_lines(in_process)
    assert skip_lines(on_beam) == skipped
    # two decode failures (skipped on the workers) and a missing file (skipped on the driver)
    assert {line.split("\t")[1] for line in skipped} == {"bad_000000_000010", "ddd_000001_000011",
                                                          "eee_000005_000015"}
    assert not (builder_dir(on_beam) / shards_dir(builders.SKIPPED_FILE)).exists()


def test_beam_options_are_key_value_pairs():
    options = pipeline_options("runner=DirectRunner, direct_num_workers=2").get_all_options()
    assert options["runner"] == "DirectRunner" and options["direct_num_workers"] == 2
    with pytest.raises(ValueError, match="comma-separated key=value pairs"):
        pipeline_options("runner=DirectRunner,streaming")
