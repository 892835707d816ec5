"""The metrics history (JSONL, trimmed on resume) and the TensorBoard events written beside it."""
import pytest

from timesformer_jax.train.metric_writers import MetricWriter, read_history


def test_metric_history_and_tensorboard_events(tmp_path):
    import tensorflow as tf

    writer = MetricWriter(tmp_path, resume_step=0)
    for step in (1, 2, 3):
        writer.write(step, "train", {"loss": 1.0 / step})
    writer.close()
    # A resume from step 2 forgets what was logged after it.
    MetricWriter(tmp_path, resume_step=2).close()
    assert [r["step"] for r in read_history(tmp_path)] == [1, 2]
    events = sorted((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    scalars = [(e.step, v.tag, float(tf.make_ndarray(v.tensor)))
               for path in events for e in tf.compat.v1.train.summary_iterator(str(path)) for v in e.summary.value]
    assert scalars == [(1, "train/loss", 1.0), (2, "train/loss", 0.5), (3, "train/loss", pytest.approx(1 / 3))]
    plugin = next(v.metadata.plugin_data.plugin_name for path in events
                  for e in tf.compat.v1.train.summary_iterator(str(path)) for v in e.summary.value)
    assert plugin == "scalars"
