"""Sharded training steps compute what one device computes (8 simulated CPU devices, in a subprocess)."""
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jax
    import numpy as np

    from timesformer_jax.model import create_model
    from timesformer_jax.parallel import create_mesh
    from timesformer_jax.train.optimizer import OptimizerConfig, create_optimizer
    from timesformer_jax.train.state import StepConfig, create_train_state, make_train_step, state_shardings

    model = create_model("timesformer_tiny", drop_path_rate=0.1)
    optimizer, schedule = create_optimizer(OptimizerConfig(base_learning_rate=0.05, clip_grad_norm=1.0), 8, 10)
    rng = np.random.default_rng(0)
    batches = [{"video": rng.normal(size=(8, 4, 32, 32, 3)).astype(np.float32),
                "label": rng.integers(0, 10, 8).astype(np.int32)} for _ in range(3)]

    def train(mesh):
        shardings, _ = state_shardings(model, optimizer, mesh, (8, 4, 32, 32, 3))
        state = create_train_state(model, optimizer, mesh, (8, 4, 32, 32, 3), seed=0)
        step = make_train_step(model, optimizer, schedule, mesh, shardings, StepConfig(label_smoothing=0.1))
        losses = []
        for batch in batches:
            state, metrics = step(state, batch)
            losses.append(float(metrics["loss"]))
        return losses, jax.device_get(state)

    single_losses, single = train(create_mesh({"data": 1}, devices=jax.devices()[:1]))
    mesh = create_mesh({"data": 4, "tensor": 2})
    sharded_losses, sharded = train(mesh)
    print("losses", single_losses, sharded_losses)
    np.testing.assert_allclose(sharded_losses, single_losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(sharded)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert single_losses[0] != single_losses[2]  # it trains
    print("sharded step OK")
    """
)


@pytest.mark.slow
def test_data_tensor_mesh_matches_one_device(run_on_devices):
    run_on_devices(SCRIPT, expect="sharded step OK")
