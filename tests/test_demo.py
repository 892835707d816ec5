"""The demo's comparison table: accuracies per class group from a confusion matrix, computed by hand."""
import numpy as np
import pytest


def test_demo_group_accuracies_and_table():
    from timesformer_jax.data.synthetic_motion import CLASSES
    from timesformer_jax.demo import format_table, group_accuracies

    index = {name: i for i, name in enumerate(CLASSES)}
    confusion = np.zeros((10, 10), int)
    for name in CLASSES:
        confusion[index[name], index[name]] = 2  # two right per class
    confusion[index["move_left"], index["move_right"]] = 2  # two left-movers taken for right-movers
    confusion[index["still_ring"], index["move_up"]] = 1
    accuracies = group_accuracies(list(CLASSES), confusion)
    assert accuracies["top1"] == pytest.approx(20 / 23)
    assert accuracies["reversal_pairs"] == pytest.approx(16 / 18)
    assert accuracies["still"] == pytest.approx(4 / 5)
    assert accuracies["pair_confusions"] == pytest.approx(2 / 18)
    table = format_table([("divided_space_time", accuracies, 3.0)])
    assert table.splitlines()[-1].split()[:2] == ["divided_space_time", "87.0"]
