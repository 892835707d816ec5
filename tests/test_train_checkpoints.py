"""Checkpoints: stop-and-resume equals training straight through; restore onto another mesh shape."""
import textwrap

import jax
import numpy as np
import pytest

from timesformer_jax.model import create_model
from timesformer_jax.parallel import create_mesh
from timesformer_jax.train.checkpointing import Checkpointer
from timesformer_jax.train.optimizer import OptimizerConfig, create_optimizer
from timesformer_jax.train.state import StepConfig, create_train_state, make_train_step, state_shardings

SHAPE = (4, 4, 32, 32, 3)


def setup():
    model = create_model("timesformer_tiny", drop_path_rate=0.1)
    optimizer, schedule = create_optimizer(OptimizerConfig(name="adamw", base_learning_rate=1e-3, epochs=2), 4, 4)
    mesh = create_mesh({"data": 1}, devices=jax.devices()[:1])
    shardings, abstract = state_shardings(model, optimizer, mesh, SHAPE)
    step = make_train_step(model, optimizer, schedule, mesh, shardings, StepConfig(seed=1))
    return model, optimizer, mesh, shardings, abstract, step


def batch(i):
    rng = np.random.default_rng(i)
    return {"video": rng.normal(size=SHAPE).astype(np.float32), "label": rng.integers(0, 10, 4).astype(np.int32)}


@pytest.mark.slow
def test_resume_equals_straight_run(tmp_path):
    model, optimizer, mesh, shardings, abstract, step = setup()
    straight = create_train_state(model, optimizer, mesh, SHAPE)
    for i in range(6):
        straight, _ = step(straight, batch(i))

    state = create_train_state(model, optimizer, mesh, SHAPE)
    checkpointer = Checkpointer(tmp_path / "ckpt")
    for i in range(3):
        state, _ = step(state, batch(i))
    checkpointer.save(3, state, {"next_batch": 3})
    checkpointer.close()
    del state

    resumed_checkpointer = Checkpointer(tmp_path / "ckpt")
    state, meta = resumed_checkpointer.restore(abstract, shardings)
    assert meta == {"next_batch": 3} and int(state.step) == 3
    for i in range(meta["next_batch"], 6):
        state, _ = step(state, batch(i))
    for a, b in zip(jax.tree.leaves(jax.device_get(straight)), jax.tree.leaves(jax.device_get(state))):
        np.testing.assert_array_equal(a, b)
    assert Checkpointer(tmp_path / "empty").restore(abstract, shardings) is None


SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    import numpy as np
    from timesformer_jax.model import create_model
    from timesformer_jax.parallel import create_mesh
    from timesformer_jax.train.checkpointing import Checkpointer
    from timesformer_jax.train.optimizer import OptimizerConfig, create_optimizer
    from timesformer_jax.train.state import create_train_state, state_shardings

    shape = (8, 4, 32, 32, 3)
    model = create_model("timesformer_tiny")
    optimizer, _ = create_optimizer(OptimizerConfig(), 8, 10)
    saved_on = create_mesh({"data": -1})
    state = create_train_state(model, optimizer, saved_on, shape, seed=3)
    checkpointer = Checkpointer(sys.argv[1])
    checkpointer.save(0, state, {})
    checkpointer.close()
    restore_on = create_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    shardings, abstract = state_shardings(model, optimizer, restore_on, shape)
    restored, _ = Checkpointer(sys.argv[1]).restore(abstract, shardings)
    qkv = restored.params["blocks_0"]["attn"]["qkv"]["kernel"]
    assert qkv.sharding.spec == shardings.params["blocks_0"]["attn"]["qkv"]["kernel"].spec, qkv.sharding
    for a, b in zip(jax.tree.leaves(jax.device_get(state)), jax.tree.leaves(jax.device_get(restored))):
        np.testing.assert_array_equal(a, b)
    print("restored on", dict(restore_on.shape), qkv.sharding.spec, "OK")
    """
)


@pytest.mark.slow
def test_restore_onto_another_mesh_shape(tmp_path, run_on_devices):
    run_on_devices(SCRIPT, tmp_path / "ckpt")


def test_a_save_without_room_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """A full disk is found before orbax writes: one error naming the checkpoint, the space needed and free, and
    what is kept; no partial folder is left (orbax's writer threads would print a traceback per file)."""
    import shutil

    import jax.numpy as jnp

    from timesformer_jax.train.checkpointing import CheckpointSaveError, committed_steps

    state = {"w": jnp.ones((256, 256), jnp.float32)}  # 256 KiB
    directory = tmp_path / "ckpt"
    checkpointer = Checkpointer(directory)
    checkpointer.save(1, state, {"step": 1}, force=True)
    checkpointer.wait()
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=300_000))
    with pytest.raises(CheckpointSaveError) as refused:
        checkpointer.save(2, state, {"step": 2}, force=True)
    message = str(refused.value)
    assert "checkpoint 2" in message and "0.3 MiB free" in message and "step 1, is intact" in message
    monkeypatch.undo()
    checkpointer.close()
    assert committed_steps(directory) == [1]
    assert sorted(p.name for p in directory.iterdir()) == ["1"]
