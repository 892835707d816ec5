"""Stopping a run when its evaluation has stopped improving (`config.stop_on_plateau`).

The rule, a pure function of the evaluations so far (so a resumed run decides exactly as an uninterrupted one):
from epoch `start_from_epoch` on, an evaluation improves when its video top-1 beats the best so far by more than
`min_delta` (the bar moves only on an improvement, so a slow rise still counts once it adds up to more than
`min_delta`); the run stops at the evaluation that makes `patience` evaluations in a row without an improvement.
Evaluations before `start_from_epoch` set the best but never count towards the patience (a model whose
accuracy sits still before it learns something new is not stopped there). `patience = 0` turns the rule off:
the run trains for its whole schedule (`optimizer.epochs`), which stays the budget either way.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import ml_collections

PLATEAU_METRIC = "video_top1"


@dataclasses.dataclass(frozen=True)
class PlateauRule:
    patience: int = 0  # evaluations in a row without an improvement; 0: never stop early
    min_delta: float = 0.01  # an improvement beats the best by more than this (top-1 as a fraction)
    start_from_epoch: float = 0.0  # evaluations before this epoch do not count towards the patience

    def __post_init__(self):
        if not (isinstance(self.patience, int) and not isinstance(self.patience, bool) and self.patience >= 0):
            raise ValueError(f"config.stop_on_plateau.patience must be an integer >= 0, got {self.patience!r}")
        if not (isinstance(self.min_delta, (int, float)) and 0 <= self.min_delta < 1):
            raise ValueError(f"config.stop_on_plateau.min_delta must be a number in [0, 1), got {self.min_delta!r}")
        if not (isinstance(self.start_from_epoch, (int, float)) and self.start_from_epoch >= 0):
            raise ValueError("config.stop_on_plateau.start_from_epoch must be a number >= 0, got "
                             f"{self.start_from_epoch!r}")


@dataclasses.dataclass(frozen=True)
class Plateau:
    """Where the rule stopped a run: at evaluation `step`, the best `best` having been reached at `best_step`."""

    step: int
    best: float
    best_step: int
    patience: int
    min_delta: float

    def text(self) -> str:
        return (f"stopped on a plateau at step {self.step}: video top-1 has not improved by more than "
                f"{100 * self.min_delta:g} points in {self.patience} evaluations (best {100 * self.best:.2f}% at "
                f"step {self.best_step})")


def plateau_rule(config: ml_collections.ConfigDict) -> PlateauRule:
    """The run's rule from `config.stop_on_plateau` (absent: off)."""
    section = config.get("stop_on_plateau")
    if section is None:
        return PlateauRule()
    fields = section.to_dict()
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(PlateauRule)})
    if unknown:
        raise ValueError(f"config.stop_on_plateau has no field {unknown[0]!r}; its fields are patience, min_delta "
                         "and start_from_epoch")
    return PlateauRule(**fields)


def find_plateau(evaluations: Sequence[tuple[int, float]], rule: PlateauRule, steps_per_epoch: int) -> Plateau | None:
    """The first evaluation at which `rule` stops the run, over (step, video top-1) pairs in step order; None
    when it never does."""
    if rule.patience == 0:
        return None
    bar, waited = float("-inf"), 0  # the top-1 an improvement must beat by more than min_delta
    best, best_step = float("-inf"), None  # the highest top-1 so far, for the message
    for step, value in evaluations:
        if value > best:
            best, best_step = value, step
        if value > bar + rule.min_delta:
            bar, waited = value, 0
        elif step >= rule.start_from_epoch * steps_per_epoch:
            waited += 1
            if waited >= rule.patience:
                return Plateau(step, best, best_step, rule.patience, rule.min_delta)
    return None
