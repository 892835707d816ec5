"""The paper's optimisation recipe and AdamW, as optax transformations built from a config.

* `sgd` (the paper, official configs): SGD with momentum 0.9 and L2 weight decay 1e-4 coupled into the gradient
  as `torch.optim.SGD(weight_decay=...)` does; base lr 0.005 for the official global batch of 64 (8 GPUs x 8),
  scaled linearly with the global batch; x0.1 at epochs 11 and 14 of 15.
* `adamw`: decoupled weight decay, linear warmup then cosine decay.

Both: no weight decay on biases, norm parameters and the position/time/cls embeddings (configurable), global
gradient-norm clipping, and gradient accumulation over `accumulation_steps` micro-batches (`optax.MultiSteps`).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import optax

OPTIMIZERS = ("sgd", "adamw")
NO_DECAY_NAMES = ("bias", "scale", "pos_embed", "time_embed", "cls_token")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: str = "sgd"
    base_learning_rate: float = 0.005
    reference_batch_size: int = 64  # the global batch base_learning_rate was tuned for (linear scaling)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    no_decay_names: Sequence[str] = NO_DECAY_NAMES
    epochs: int = 15
    decay_epochs: Sequence[int] = (11, 14)  # sgd: lr x decay_factor at each
    decay_factor: float = 0.1
    warmup_epochs: float = 0.0
    clip_grad_norm: float | None = None
    accumulation_steps: int = 1
    adam_b1: float = 0.9
    adam_b2: float = 0.999


def scaled_learning_rate(config: OptimizerConfig, global_batch_size: int) -> float:
    """The linear scaling rule: base lr x global batch / reference batch."""
    return config.base_learning_rate * global_batch_size / config.reference_batch_size


def learning_rate_schedule(config: OptimizerConfig, global_batch_size: int, steps_per_epoch: int) -> optax.Schedule:
    """Per optimizer step: linear warmup from 0, then steps (`sgd`) or cosine to 0 (`adamw`)."""
    peak = scaled_learning_rate(config, global_batch_size)
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    total_steps = config.epochs * steps_per_epoch
    if config.name == "sgd":
        boundaries = {int(e * steps_per_epoch): config.decay_factor for e in config.decay_epochs}
        main = optax.piecewise_constant_schedule(peak, boundaries)
        if not warmup_steps:
            return main
        warmup = optax.linear_schedule(0.0, peak, warmup_steps)
        return lambda step: jax.numpy.where(step < warmup_steps, warmup(step), main(step))
    return optax.warmup_cosine_decay_schedule(0.0, peak, max(warmup_steps, 0), max(total_steps, warmup_steps + 1))


def weight_decay_mask(params, no_decay_names: Sequence[str] = NO_DECAY_NAMES):
    """True for parameters that get weight decay: every leaf whose path names none of `no_decay_names`."""
    def decays(path, _):
        names = {getattr(k, "key", getattr(k, "name", str(k))) for k in path}
        return not (names & set(no_decay_names))

    return jax.tree_util.tree_map_with_path(decays, params)


def create_optimizer(config: OptimizerConfig, global_batch_size: int, steps_per_epoch: int):
    """(optax transformation, lr schedule). Steps of the schedule count optimizer updates, not micro-batches."""
    if config.name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.name!r}; expected one of {OPTIMIZERS}")
    schedule = learning_rate_schedule(config, global_batch_size, steps_per_epoch)
    mask = lambda params: weight_decay_mask(params, config.no_decay_names)  # noqa: E731
    parts = [optax.clip_by_global_norm(config.clip_grad_norm)] if config.clip_grad_norm else []
    if config.name == "sgd":
        # torch.optim.SGD: g += wd * p, then momentum buffer b = m * b + g, then p -= lr * b.
        parts += [optax.add_decayed_weights(config.weight_decay, mask), optax.sgd(schedule, momentum=config.momentum)]
    else:
        parts.append(optax.adamw(schedule, config.adam_b1, config.adam_b2, weight_decay=config.weight_decay, mask=mask))
    optimizer = optax.chain(*parts)
    if config.accumulation_steps > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=config.accumulation_steps)
    return optimizer, schedule
