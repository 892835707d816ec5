"""The plateau rule (`config.stop_on_plateau`, train/plateau.py) on evaluation sequences worked out by hand."""
import pytest

from timesformer_jax.train.config import base_config, config_problems
from timesformer_jax.train.plateau import PlateauRule, find_plateau, plateau_rule

STEPS_PER_EPOCH = 10


def evals(*top1):
    """One evaluation per epoch: (step, top-1) at steps 10, 20, ..."""
    return [(STEPS_PER_EPOCH * (i + 1), v) for i, v in enumerate(top1)]


def test_stops_at_the_evaluation_that_completes_the_patience():
    rule = PlateauRule(patience=3, min_delta=0.01)
    # 0.50 sets the bar, 0.60 beats it; 0.605, 0.61 and 0.595 do not beat 0.60 by more than 0.01: the third of
    # them (epoch 5, step 50) stops the run. The best seen is 0.61 at step 40.
    plateau = find_plateau(evals(0.50, 0.60, 0.605, 0.61, 0.595, 0.99), rule, STEPS_PER_EPOCH)
    assert (plateau.step, plateau.best, plateau.best_step) == (50, 0.61, 40)
    assert "step 50" in plateau.text() and "61.00% at step 40" in plateau.text()


def test_a_slow_rise_counts_once_it_adds_up_to_more_than_min_delta():
    rule = PlateauRule(patience=3, min_delta=0.01)
    # Steps of 0.006: the bar (0.50) is beaten at 0.512 (third evaluation), then at 0.524, ...: never 3 misses.
    assert find_plateau(evals(*(0.50 + 0.006 * i for i in range(12))), rule, STEPS_PER_EPOCH) is None


def test_evaluations_before_start_from_epoch_do_not_count():
    values = (0.56, 0.565, 0.56, 0.565, 0.56, 0.98, 0.985, 0.985, 0.985)
    early = find_plateau(evals(*values), PlateauRule(patience=3), STEPS_PER_EPOCH)
    assert early.step == 40  # a long wait before the take-off stops a run with no start epoch
    late = find_plateau(evals(*values), PlateauRule(patience=3, start_from_epoch=5), STEPS_PER_EPOCH)
    assert (late.step, late.best_step) == (90, 70)  # 0.98 at epoch 6 beats 0.56 + 0.01; 7, 8, 9 (0.985) do not beat it


def test_patience_zero_never_stops():
    assert find_plateau(evals(*[0.5] * 50), PlateauRule(patience=0), STEPS_PER_EPOCH) is None


def test_the_config_section_is_checked_with_the_other_fields():
    config = base_config("timesformer_tiny")
    assert plateau_rule(config) == PlateauRule()  # off by default
    config.stop_on_plateau.patience = -1
    config.stop_on_plateau.min_delta = 5.0
    problems = " ".join(config_problems(config))
    assert "config.stop_on_plateau.patience must be an integer >= 0, got -1" in problems
    config.stop_on_plateau.patience = 2
    assert "config.stop_on_plateau.min_delta must be a number in [0, 1), got 5.0" in " ".join(config_problems(config))
    config.stop_on_plateau.min_delta = 0.01
    config.stop_on_plateau.patiense = 3
    with pytest.raises(ValueError, match="no field 'patiense'"):
        plateau_rule(config)
