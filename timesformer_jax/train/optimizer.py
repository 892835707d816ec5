"""Optimizers and learning-rate schedules from config, as two separate choices (as big_vision does).

* The optimizer is any optax optimizer named by `OptimizerConfig.name` (`sgd`, `adamw`, `adam`, `lamb`, `lion`,
  ...), called as `optax.<name>(learning_rate=schedule, **args)`. The paper's recipe is the default: `sgd` with
  momentum 0.9 and L2 weight decay 1e-4; base lr 0.005 for the official global batch of 64 (8 GPUs x 8),
  scaled linearly with the global batch.
* Weight decay: an optimizer that takes a `weight_decay` argument (adamw, lamb, lion, ...) gets it, decoupled
  as that optimizer defines it; any other (sgd, adam, ...) gets it coupled into the gradient, as
  `torch.optim.SGD(weight_decay=...)` and `torch.optim.Adam(weight_decay=...)` do. Either way biases, norm
  parameters and the position/time/cls embeddings are exempt (`no_decay_names`).
* The schedule (`ScheduleConfig`): `step_decay` (the paper: x0.1 at epochs 11 and 14 of 15), `warmup_cosine`
  or `constant`, each after an optional linear warmup from 0.

Both: global gradient-norm clipping, and gradient accumulation over `accumulation_steps` micro-batches
(`optax.MultiSteps`). Schedule steps count optimizer updates, not micro-batches.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

NO_DECAY_NAMES = ("bias", "scale", "pos_embed", "time_embed", "cls_token")
SCHEDULES = ("step_decay", "warmup_cosine", "constant")
# The recipe's arguments of an optimizer when `args` is not given: the paper's SGD momentum.
RECIPE_ARGS = {"sgd": {"momentum": 0.9}}


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: str = "sgd"  # any optax optimizer taking `learning_rate`
    args: Mapping | None = None  # keyword arguments of optax.<name>; None: RECIPE_ARGS for the name, else none
    base_learning_rate: float = 0.005
    reference_batch_size: int = 64  # the global batch base_learning_rate was tuned for (linear scaling)
    weight_decay: float = 1e-4
    no_decay_names: Sequence[str] = NO_DECAY_NAMES
    epochs: int = 15
    clip_grad_norm: float | None = None
    accumulation_steps: int = 1


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    name: str = "step_decay"  # one of SCHEDULES
    warmup_epochs: float = 0.0  # linear warmup from 0 to the peak, before any schedule
    decay_epochs: Sequence[float] = (11, 14)  # step_decay: lr x decay_factor at each
    decay_factor: float = 0.1


def scaled_learning_rate(config: OptimizerConfig, global_batch_size: int) -> float:
    """The linear scaling rule: base lr x global batch / reference batch."""
    return config.base_learning_rate * global_batch_size / config.reference_batch_size


def learning_rate_schedule(schedule: ScheduleConfig, peak: float, steps_per_epoch: int,
                           epochs: int) -> optax.Schedule:
    """lr per optimizer step: linear warmup from 0 to `peak` over `warmup_epochs`, then the named schedule over
    the `epochs * steps_per_epoch` steps of the run (step decay counts epochs from step 0, warmup included)."""
    if schedule.name not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule.name!r} (config.schedule.name); expected one of {SCHEDULES}")
    warmup_steps = int(round(schedule.warmup_epochs * steps_per_epoch))
    total_steps = epochs * steps_per_epoch
    if schedule.name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, max(total_steps, warmup_steps + 1))
    if schedule.name == "step_decay":
        boundaries = {int(e * steps_per_epoch): schedule.decay_factor for e in schedule.decay_epochs}
        main = optax.piecewise_constant_schedule(peak, boundaries)
    else:
        main = optax.constant_schedule(peak)
    if not warmup_steps:
        return main
    warmup = optax.linear_schedule(0.0, peak, warmup_steps)
    return lambda step: jnp.where(step < warmup_steps, warmup(step), main(step))


def weight_decay_mask(params, no_decay_names: Sequence[str] = NO_DECAY_NAMES):
    """True for parameters that get weight decay: every leaf whose path names none of `no_decay_names`."""
    def decays(path, _):
        names = {getattr(k, "key", getattr(k, "name", str(k))) for k in path}
        return not (names & set(no_decay_names))

    return jax.tree_util.tree_map_with_path(decays, params)


def _optax_optimizer(name: str):
    factory = getattr(optax, name, None) if not name.startswith("_") else None
    parameters = _parameters(factory) if callable(factory) else {}
    if "learning_rate" not in parameters:
        raise ValueError(
            f"unknown optimizer {name!r} (config.optimizer.name): expected the name of an optax optimizer that "
            "takes a learning_rate, e.g. sgd, momentum, adam, adamw, lamb, lion, rmsprop, adafactor")
    return factory, parameters


def _parameters(factory) -> dict:
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return {}


def optimizer_transforms(config: OptimizerConfig, schedule: optax.Schedule) -> list[optax.GradientTransformation]:
    """`optax.<name>(schedule, **args)`, preceded by coupled weight decay unless the optimizer decays itself."""
    factory, parameters = _optax_optimizer(config.name)
    args = dict(RECIPE_ARGS.get(config.name, {}) if config.args is None else config.args)
    reserved = sorted({"learning_rate", "weight_decay", "mask"} & set(args))
    unknown = sorted(set(args) - set(parameters))
    if reserved or unknown:
        raise ValueError(
            f"config.optimizer.args {args} for optax.{config.name}: "
            + (f"{reserved} come from the config's own fields (base_learning_rate, weight_decay, no_decay_names); "
               if reserved else "")
            + (f"optax.{config.name} takes no argument {unknown}; " if unknown else "")
            + f"its arguments are {[p for p in parameters if p not in ('learning_rate',)]}")
    mask = lambda params: weight_decay_mask(params, config.no_decay_names)  # noqa: E731
    if "weight_decay" in parameters:  # decoupled, the optimizer's own (adamw, lamb, lion, ...)
        if "mask" in parameters:
            args["mask"] = mask
        return [factory(learning_rate=schedule, weight_decay=config.weight_decay, **args)]
    # Coupled L2, as torch.optim.SGD / Adam: g += wd * p before the optimizer (momentum, moments) sees it.
    return [optax.add_decayed_weights(config.weight_decay, mask), factory(learning_rate=schedule, **args)]


def create_optimizer(config: OptimizerConfig, global_batch_size: int, steps_per_epoch: int,
                     schedule: ScheduleConfig = ScheduleConfig()):
    """(optax transformation, lr schedule) for optimizer steps of `global_batch_size` clips, `steps_per_epoch`
    optimizer steps per epoch. Steps of the schedule count optimizer updates, not micro-batches."""
    lr = learning_rate_schedule(schedule, scaled_learning_rate(config, global_batch_size), steps_per_epoch,
                                config.epochs)
    parts = [optax.clip_by_global_norm(config.clip_grad_norm)] if config.clip_grad_norm else []
    optimizer = optax.chain(*parts, *optimizer_transforms(config, lr))
    if config.accumulation_steps > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=config.accumulation_steps)
    return optimizer, lr
