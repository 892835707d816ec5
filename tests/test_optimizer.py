"""Optimisers against torch.optim on the same problem, schedules against their closed forms, the loss against
torch's label-smoothed cross-entropy."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from timesformer_jax.model import create_model
from timesformer_jax.train.losses import cross_entropy, top_k_correct
from timesformer_jax.train.optimizer import (
    OptimizerConfig,
    ScheduleConfig,
    create_optimizer,
    learning_rate_schedule,
    scaled_learning_rate,
    weight_decay_mask,
)


def quadratic_problem(seed=0):
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(5, 3)).astype(np.float32), "bias": rng.normal(size=(3,)).astype(np.float32)}, \
        rng.normal(size=(16, 5)).astype(np.float32), rng.normal(size=(16, 3)).astype(np.float32)


def run_ours(config, steps=5):
    params, x, y = quadratic_problem()
    optimizer, _ = create_optimizer(config, global_batch_size=config.reference_batch_size, steps_per_epoch=100)
    state = optimizer.init(params)
    loss = lambda p: jnp.mean((x @ p["w"] + p["bias"] - y) ** 2)  # noqa: E731
    for _ in range(steps):
        grads = jax.grad(loss)(params)
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def run_torch(make_optimizer, steps=5):
    params, x, y = quadratic_problem()
    w, b = (torch.tensor(params[k], requires_grad=True) for k in ("w", "bias"))
    optimizer = make_optimizer(w, b)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.mean((torch.from_numpy(x) @ w + b - torch.from_numpy(y)) ** 2).backward()
        optimizer.step()
    return {"w": w.detach().numpy(), "bias": b.detach().numpy()}


def test_sgd_matches_torch_sgd_with_coupled_weight_decay_not_on_biases():
    config = OptimizerConfig(name="sgd", base_learning_rate=0.1, weight_decay=0.05)
    ours = run_ours(config)
    reference = run_torch(lambda w, b: torch.optim.SGD(
        [{"params": [w], "weight_decay": 0.05}, {"params": [b], "weight_decay": 0.0}], lr=0.1, momentum=0.9))
    for key in ours:
        np.testing.assert_allclose(ours[key], reference[key], rtol=1e-5, atol=1e-6)


def test_adamw_matches_torch_adamw():
    config = OptimizerConfig(name="adamw", base_learning_rate=0.01, weight_decay=0.05, epochs=1000)
    schedule = learning_rate_schedule(ScheduleConfig(), config.base_learning_rate, 100, config.epochs)
    lrs = [float(schedule(i)) for i in range(5)]
    params, x, y = quadratic_problem()
    w, b = (torch.tensor(params[k], requires_grad=True) for k in ("w", "bias"))
    optimizer = torch.optim.AdamW([{"params": [w], "weight_decay": 0.05}, {"params": [b], "weight_decay": 0.0}],
                                  lr=lrs[0], betas=(0.9, 0.999), eps=1e-8)
    for lr in lrs:
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        torch.mean((torch.from_numpy(x) @ w + b - torch.from_numpy(y)) ** 2).backward()
        optimizer.step()
    ours = run_ours(config)
    np.testing.assert_allclose(ours["w"], w.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours["bias"], b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_paper_schedule_steps_down_at_epochs_11_and_14_with_linear_scaling():
    config = OptimizerConfig()
    assert scaled_learning_rate(config, 64) == 0.005 and scaled_learning_rate(config, 16) == 0.00125
    schedule = learning_rate_schedule(ScheduleConfig(), scaled_learning_rate(config, 64), 10, config.epochs)
    expected = {0: 0.005, 109: 0.005, 110: 0.0005, 139: 0.0005, 140: 0.00005, 149: 0.00005}
    for step, lr in expected.items():
        assert float(schedule(step)) == pytest.approx(lr), step


def test_warmup_then_cosine():
    schedule = learning_rate_schedule(ScheduleConfig("warmup_cosine", warmup_epochs=1), 1.0, 10, epochs=3)
    assert float(schedule(0)) == 0.0 and float(schedule(5)) == pytest.approx(0.5)
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(20)) == pytest.approx(0.5 * (1 + np.cos(np.pi * 10 / 20)))  # half way through the decay
    assert float(schedule(30)) == pytest.approx(0.0, abs=1e-7)


def test_no_decay_on_biases_norms_and_embeddings():
    model = create_model("timesformer_tiny")
    params = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 4, 32, 32, 3)))["params"])
    mask = weight_decay_mask(params)
    assert mask["blocks_0"]["attn"]["qkv"]["kernel"] and mask["head"]["kernel"] and mask["patch_embed"]["kernel"]
    for off in (mask["blocks_0"]["attn"]["qkv"]["bias"], mask["blocks_0"]["norm1"]["scale"], mask["norm"]["bias"],
                mask["pos_embed"], mask["time_embed"], mask["cls_token"], mask["blocks_0"]["temporal_fc"]["bias"]):
        assert not off


def test_gradient_accumulation_equals_the_big_batch_step():
    params, x, y = quadratic_problem()
    loss = lambda p, xb, yb: jnp.mean((xb @ p["w"] + p["bias"] - yb) ** 2)  # noqa: E731
    big, _ = create_optimizer(OptimizerConfig(base_learning_rate=0.1), 64, 10)
    small, _ = create_optimizer(OptimizerConfig(base_learning_rate=0.1, accumulation_steps=4), 64, 10)
    updates, _ = big.update(jax.grad(loss)(params, x, y), big.init(params), params)
    expected = optax.apply_updates(params, updates)
    state, accumulated = small.init(params), params
    for chunk in range(4):
        sl = slice(4 * chunk, 4 * chunk + 4)
        updates, state = small.update(jax.grad(loss)(accumulated, x[sl], y[sl]), state, accumulated)
        accumulated = optax.apply_updates(accumulated, updates)
    for key in expected:
        np.testing.assert_allclose(accumulated[key], expected[key], rtol=1e-5, atol=1e-6)


def test_label_smoothed_cross_entropy_matches_torch():
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(6, 5)).astype(np.float32), rng.integers(0, 5, 6)
    for smoothing in (0.0, 0.1):
        reference = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                                                      label_smoothing=smoothing)
        assert float(cross_entropy(logits, labels, smoothing)) == pytest.approx(float(reference), rel=1e-5)
    mask = np.array([1, 1, 1, 0, 0, 0])
    assert float(cross_entropy(logits, labels, mask=mask)) == pytest.approx(float(cross_entropy(logits[:3], labels[:3])))
    correct = top_k_correct(jnp.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]]), jnp.array([2, 2]), k=2)
    assert correct.tolist() == [False, True]


def test_any_optax_optimizer_by_name_with_coupled_decay_when_it_has_none():
    # optax.adam takes no weight_decay: it is coupled into the gradient, which is what torch.optim.Adam does.
    config = OptimizerConfig(name="adam", args={"b2": 0.99}, base_learning_rate=0.01, weight_decay=0.05)
    ours = run_ours(config)
    reference = run_torch(lambda w, b: torch.optim.Adam(
        [{"params": [w], "weight_decay": 0.05}, {"params": [b], "weight_decay": 0.0}], lr=0.01, betas=(0.9, 0.99)))
    for key in ours:
        np.testing.assert_allclose(ours[key], reference[key], rtol=1e-5, atol=1e-6)


def test_optimizer_args_reach_optax():
    # SGD without the recipe's momentum and with Nesterov's are different optimizers, each like torch's.
    for args, torch_kwargs in [({}, {}), ({"momentum": 0.5, "nesterov": True}, {"momentum": 0.5, "nesterov": True})]:
        config = OptimizerConfig(name="sgd", args=args, base_learning_rate=0.1, weight_decay=0.0)
        ours = run_ours(config)
        reference = run_torch(lambda w, b: torch.optim.SGD([w, b], lr=0.1, **torch_kwargs))
        for key in ours:
            np.testing.assert_allclose(ours[key], reference[key], rtol=1e-5, atol=1e-6)


def test_bad_optimizer_names_and_args_are_clear_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'.*optax optimizer that takes a learning_rate"):
        create_optimizer(OptimizerConfig(name="adamx"), 64, 10)
    with pytest.raises(ValueError, match="unknown optimizer 'tree'"):  # optax.tree is a module, not an optimizer
        create_optimizer(OptimizerConfig(name="tree"), 64, 10)
    with pytest.raises(ValueError, match=r"optax.adamw takes no argument \['momentum'\].*'b1'"):
        create_optimizer(OptimizerConfig(name="adamw", args={"momentum": 0.9}), 64, 10)
    with pytest.raises(ValueError, match=r"\['weight_decay'\] come from the config's own fields"):
        create_optimizer(OptimizerConfig(name="adamw", args={"weight_decay": 0.1}), 64, 10)
    with pytest.raises(ValueError, match="unknown schedule 'linear'.*step_decay"):
        create_optimizer(OptimizerConfig(), 64, 10, ScheduleConfig(name="linear"))


def test_schedule_is_chosen_apart_from_the_optimizer():
    # Warmup then constant, and warmup then the paper's steps: closed forms, and the same for SGD or AdamW.
    constant = learning_rate_schedule(ScheduleConfig("constant", warmup_epochs=0.5), 2.0, 10, epochs=4)
    assert [float(constant(s)) for s in (0, 1, 4, 5, 39)] == pytest.approx([0.0, 0.4, 1.6, 2.0, 2.0])
    steps = learning_rate_schedule(ScheduleConfig("step_decay", warmup_epochs=1, decay_epochs=(2,), decay_factor=0.5),
                                   1.0, 10, epochs=3)
    assert [float(steps(s)) for s in (0, 5, 10, 19, 20, 29)] == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.5, 0.5])
    cosine = ScheduleConfig("warmup_cosine", warmup_epochs=1)
    for name in ("sgd", "adamw"):
        _, schedule = create_optimizer(OptimizerConfig(name=name, base_learning_rate=1.0, epochs=3), 64, 10, cosine)
        assert float(schedule(5)) == pytest.approx(0.5) and float(schedule(30)) == pytest.approx(0.0, abs=1e-7)


def test_config_sections_build_the_papers_recipe():
    from timesformer_jax.train.config import base_config, optimizer_config, schedule_config

    config = base_config()
    optimizer, schedule = optimizer_config(config), schedule_config(config)
    assert (optimizer.name, dict(optimizer.args), optimizer.weight_decay) == ("sgd", {"momentum": 0.9}, 1e-4)
    assert (schedule.name, tuple(schedule.decay_epochs), schedule.decay_factor) == ("step_decay", (11, 14), 0.1)
    config.optimizer.name, config.optimizer.args = "lion", {"b1": 0.95}
    config.schedule.name = "constant"
    tx, lr = create_optimizer(optimizer_config(config), 64, 10, schedule_config(config))
    params = {"w": jnp.ones((2, 2))}
    updates, _ = tx.update({"w": jnp.ones((2, 2))}, tx.init(params), params)
    # lion: lr * (sign(update) + wd * p) with wd decoupled: -0.005 * (1 + 1e-4) per element
    np.testing.assert_allclose(updates["w"], -0.005 * (1 + 1e-4), rtol=1e-6)
