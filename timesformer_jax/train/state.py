"""Train state created directly on its shardings, and the jitted train / eval steps.

The state is (step, params, opt_state). Its shardings come from the real initialisation traced abstractly
(`jax.eval_shape` of `_state_init` keeping the boxes): the parameters keep their `nn.Partitioned` logical names, the optimizer's
init runs on those boxed parameters, so every moment carries the names of the parameter it mirrors (by structure,
not by key names), and the logical rules map the names onto the mesh (`parallel.logical_shardings`).
`create_train_state` jits the same initialisation with those shardings as outputs, so each device materialises
only its shards (no full copy on one device).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from timesformer_jax.data.device_input import MEAN, STD, normalise_on_device
from timesformer_jax.model import TimeSformer
from timesformer_jax.parallel import LOGICAL_AXIS_RULES, batch_sharding, logical_shardings, sharding_context
from timesformer_jax.train.losses import cross_entropy, top_k_correct


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def _state_init(model: TimeSformer, optimizer: optax.GradientTransformation, video_shape, keep_boxes: bool = False):
    """rng -> the initial TrainState. With `keep_boxes`, the parameters, and the optimizer state built from them,
    keep their `nn.Partitioned` logical names (what the shardings are read from, traced abstractly); without,
    the same initialisation on plain arrays (what runs)."""

    def init(rng):
        params = model.init(rng, jnp.zeros(video_shape, jnp.float32))["params"]
        if not keep_boxes:
            params = nn.unbox(params)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))

    return init


def state_shardings(model: TimeSformer, optimizer: optax.GradientTransformation, mesh: Mesh, video_shape,
                    rules=LOGICAL_AXIS_RULES, replicate_indivisible: bool = False):
    """(TrainState of NamedShardings, abstract TrainState) for `model` on `mesh` under the logical `rules`.
    IndivisibleDimensionError when a dimension does not divide over its mesh axes (unless
    `replicate_indivisible`)."""
    boxed = jax.eval_shape(_state_init(model, optimizer, video_shape, keep_boxes=True), jax.random.key(0))
    shardings = TrainState(
        step=NamedSharding(mesh, PartitionSpec()),
        params=logical_shardings(boxed.params, mesh, rules, replicate_indivisible),
        # a moment has its parameter's shape, so it divides as its parameter does; a statistic of another shape
        # that kept the parameter's box (adafactor's factored rows) is replicated where it does not divide
        opt_state=logical_shardings(boxed.opt_state, mesh, rules, replicate_indivisible=True),
    )
    return shardings, nn.unbox(boxed)


def create_train_state(model, optimizer, mesh, video_shape, seed: int = 0, init_params=None, shardings=None,
                       rules=LOGICAL_AXIS_RULES):
    """A TrainState initialised on its shardings (`state_shardings`, computed when not given). `init_params`
    (host arrays, e.g. a converted ViT) replace the random initialisation; they are placed shard by shard."""
    if shardings is None:
        shardings, _ = state_shardings(model, optimizer, mesh, video_shape, rules)
    with sharding_context(mesh, rules):
        if init_params is None:
            init = _state_init(model, optimizer, video_shape)
            return jax.jit(init, out_shardings=shardings)(jax.random.key(seed))
        params = jax.device_put(init_params, shardings.params)
        opt_state = jax.jit(optimizer.init, out_shardings=shardings.opt_state)(params)
        return TrainState(step=jax.device_put(jnp.zeros((), jnp.int32), shardings.step), params=params,
                          opt_state=opt_state)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    label_smoothing: float = 0.0
    seed: int = 0  # dropout / drop-path randomness: fold_in(seed, step)
    accumulation_steps: int = 1  # micro-batches per optimizer update (the schedule counts updates)
    # uint8 batches are normalised inside the step with these (`data.device_input`); float batches arrive
    # normalised by the pipeline
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD


STATE_FINITE = "state_finite"  # the train step's metric: 1 when every value of the updated state is finite, else 0


def all_finite(tree) -> jax.Array:
    """1.0 when every floating-point value of `tree` is finite, else 0.0 (one fused reduction per array)."""
    checks = [jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return jnp.stack(checks).all().astype(jnp.float32) if checks else jnp.float32(1)


def make_train_step(model, optimizer, schedule: Callable, mesh: Mesh, shardings: TrainState, config=StepConfig(),
                    rules=LOGICAL_AXIS_RULES):
    """jit(train_step): (state, batch{'video','label'}) -> (state, metrics). State buffers are donated. Metrics:
    loss, accuracy, grad_norm, learning_rate and STATE_FINITE (whether the updated params and optimizer state are
    all finite, so that a non-finite state is never saved).
    `step.lower(state, batch)` lowers it without running (for compile-time cost and memory analysis)."""

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(jax.random.key(config.seed), state.step)

        def loss_fn(params):
            video = normalise_on_device(batch["video"], config.mean, config.std)
            logits = model.apply({"params": params}, video, train=True, rngs={"dropout": rng})
            return cross_entropy(logits, batch["label"], config.label_smoothing), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "accuracy": top_k_correct(logits, batch["label"], 1).mean(),
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": schedule(state.step // config.accumulation_steps),
            STATE_FINITE: all_finite((params, opt_state)),
        }
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    data = batch_sharding(mesh)
    jitted = jax.jit(train_step, in_shardings=(shardings, data), out_shardings=(shardings, None), donate_argnums=0)
    return _under_mesh(jitted, mesh, rules)


def _under_mesh(jitted, mesh: Mesh, rules=LOGICAL_AXIS_RULES) -> Callable:
    """`jitted` called under the mesh and rules (`sharding_context`). Its `.lower(*args)` lowers it the same way
    without running: `.compile()` then gives XLA's cost and memory analysis, and arguments may be
    `jax.ShapeDtypeStruct`s, so nothing is allocated."""

    def run(*args):
        with sharding_context(mesh, rules):
            return jitted(*args)

    def lower(*args):
        with sharding_context(mesh, rules):
            return jitted.lower(*args)

    run.lower = lower
    return run


def make_eval_step(model, mesh: Mesh, shardings: TrainState, config=StepConfig(), rules=LOGICAL_AXIS_RULES):
    """jit(eval_step): (params, video) -> logits (B, C) float32, batch-sharded. uint8 video is normalised
    inside with `config.mean` / `config.std`."""
    data = batch_sharding(mesh)
    jitted = jax.jit(lambda params, video: model.apply({"params": params},
                                                       normalise_on_device(video, config.mean, config.std)),
                     in_shardings=(shardings.params, data), out_shardings=data)
    return _under_mesh(jitted, mesh, rules)
