"""uint8 to the device: the pipelines yield uint8 after crop and resize, and the train and eval steps normalise
on the device; against the host's normalisation of the same frames and against the float pipeline."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from timesformer_jax.data import transforms
from timesformer_jax.data.device_input import normalise_on_device
from timesformer_jax.data.pipeline import ClipConfig, eval_dataset, train_dataset

BASE = dict(num_frames=4, sampling_rate=4, target_fps=10, crop_size=32, train_scale=(32, 40), num_spatial_crops=1)
# The float pipeline normalises the resized frames unrounded; the uint8 one rounds them first: at most half a
# grey level apart, i.e. 0.5 / 255 / std after normalisation.
ROUNDING = 0.5 / 255 / 0.225


def batches(kind, builder, config, count):
    if kind == "train":
        ds = train_dataset(builder, "train", 4, config, seed=3, process_index=0, process_count=1)
    else:
        ds = eval_dataset(builder, "test", 8, config, process_index=0, process_count=1)
    return list(tfds.as_numpy(ds.take(count)))


@pytest.mark.parametrize("kind", ["train", "eval"])
def test_uint8_pipeline_normalised_on_device_equals_the_float_pipeline(data_dir, kind):
    from timesformer_jax.data.builders import dataset_builder

    builder = dataset_builder("synthetic_motion", str(data_dir), "ci")
    as_float = batches(kind, builder, ClipConfig(**BASE), 3)
    as_uint8 = batches(kind, builder, ClipConfig(**BASE, dtype="uint8"), 3)
    normalise = jax.jit(normalise_on_device)
    rounded_somewhere = False
    for f, u in zip(as_float, as_uint8):
        assert u["video"].dtype == np.uint8 and u["video"].shape == f["video"].shape
        np.testing.assert_array_equal(u["label"], f["label"])
        on_device = np.asarray(normalise(u["video"]))
        # The same formula as the host's, so the same numbers up to float32 rounding.
        host = transforms.normalise(tf.constant(u["video"], tf.float32), (0.45,) * 3, (0.225,) * 3).numpy()
        np.testing.assert_allclose(on_device, host, rtol=0, atol=2e-6)
        difference = np.abs(on_device - f["video"])
        assert difference.max() <= ROUNDING + 1e-5
        rounded_somewhere |= bool(difference.max() > 1e-3)
    if kind == "train":
        assert rounded_somewhere  # the jittered resize leaves fractions: the comparison was not vacuous


def test_float_video_passes_through_and_uint8_range_maps_to_the_normalised_range():
    video = jnp.asarray([[0, 255, 114]], jnp.uint8)
    np.testing.assert_allclose(normalise_on_device(video, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0)),
                               [[-2.0, 1.0, 114 / 255 - 0.5]], rtol=1e-6)
    floats = jnp.ones((2, 3))
    assert normalise_on_device(floats) is floats
    with pytest.raises(ValueError, match="dtype must be one of"):
        ClipConfig(dtype="float16")


@pytest.mark.slow
def test_steps_on_uint8_batches_equal_steps_on_host_normalised_batches():
    from timesformer_jax.model import create_model
    from timesformer_jax.parallel import create_mesh
    from timesformer_jax.train.optimizer import OptimizerConfig, create_optimizer
    from timesformer_jax.train.state import StepConfig, create_train_state, make_eval_step, make_train_step, state_shardings

    model = create_model("timesformer_tiny")
    optimizer, schedule = create_optimizer(OptimizerConfig(base_learning_rate=0.05), 4, 10)
    mesh = create_mesh({"data": 1}, devices=jax.devices()[:1])
    shape = (4, 4, 32, 32, 3)
    shardings, _ = state_shardings(model, optimizer, mesh, shape)
    config = StepConfig(mean=(0.4, 0.45, 0.5), std=(0.2, 0.225, 0.25))
    frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    normalised = ((frames.astype(np.float32) / 255.0 - np.float32([0.4, 0.45, 0.5])) / np.float32([0.2, 0.225, 0.25]))
    labels = np.arange(4, dtype=np.int32)
    eval_step = make_eval_step(model, mesh, shardings, config)
    state = create_train_state(model, optimizer, mesh, shape, seed=0)
    np.testing.assert_allclose(eval_step(state.params, frames), eval_step(state.params, normalised), atol=1e-5)
    results = []
    for video in (frames, normalised):
        state = create_train_state(model, optimizer, mesh, shape, seed=0)
        step = make_train_step(model, optimizer, schedule, mesh, shardings, config)
        state, metrics = step(state, {"video": video, "label": labels})
        results.append((float(metrics["loss"]), jax.device_get(state.params)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
