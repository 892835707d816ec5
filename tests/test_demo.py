"""The demo's comparison table: accuracies per class group from a confusion matrix, computed by hand; stale and
stopped runs never give a table."""
from pathlib import Path

import numpy as np
import pytest

from timesformer_jax.train.config import load_config_file


def test_demo_group_accuracies_and_table():
    from timesformer_jax.data.synthetic_motion import CLASSES
    from timesformer_jax.scheme_comparison import format_table, group_accuracies

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
    assert accuracies["pairs"]["move_right/move_left"] == pytest.approx(4 / 6)  # 2 + 2 right of 4 + 2
    assert accuracies["pairs"]["move_down/move_up"] == 1.0
    assert accuracies["worst_pair"] == pytest.approx(4 / 6)
    table = format_table([("divided_space_time", accuracies, 12.0, 3.0)])
    assert table.splitlines()[-1].split() == ["divided_space_time", "87.0", "88.9", "66.7", "80.0", "11.1", "12.0", "3.0"]


def test_a_stale_demo_run_is_set_aside_and_a_matching_one_kept(tmp_path):
    from timesformer_jax.scheme_comparison import STAMP_FILE, prepare_run_dir, run_stamp, stale_reason
    from timesformer_jax.train.config import load_config_file
    from pathlib import Path

    config_file = Path(__file__).parents[1] / "configs" / "demo.py"
    config = load_config_file(config_file, "divided_space_time")
    config.dataset.data_dir = str(tmp_path / "tfds")
    stamp = run_stamp(config, "1.0.0")
    run_dir = tmp_path / "divided_space_time"
    messages = []
    assert prepare_run_dir(run_dir, stamp, messages.append) is None and not messages  # nothing there yet
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "marker").write_text("step 5")
    # The same config, the workdir moved elsewhere: still the same run.
    moved = load_config_file(config_file, "divided_space_time")
    moved.dataset.data_dir = "/elsewhere/tfds"
    assert stale_reason(run_dir, run_stamp(moved, "1.0.0")) is None
    assert prepare_run_dir(run_dir, run_stamp(moved, "1.0.0"), messages.append) is None
    assert (run_dir / "checkpoints" / "marker").is_file()
    # Another learning rate, another dataset version, another package version, no stamp: set aside.
    changed = load_config_file(config_file, "divided_space_time")
    changed.optimizer.base_learning_rate = 0.5
    reason = stale_reason(run_dir, run_stamp(changed, "1.0.0"))
    assert "optimizer.base_learning_rate" in reason and "0.5" in reason
    assert "synthetic_motion 1.0.0, this is 2.0.0" in stale_reason(run_dir, run_stamp(config, "2.0.0"))
    other_version = dict(stamp, package_version="0.0.1")
    assert "timesformer_jax" in stale_reason(run_dir, other_version)
    kept = prepare_run_dir(run_dir, run_stamp(changed, "1.0.0"), messages.append)
    assert kept.parent == tmp_path / "previous" and (kept / "checkpoints" / "marker").read_text() == "step 5"
    assert not (run_dir / "checkpoints").exists() and "training it again" in messages[-1] and str(kept) in messages[-1]
    (run_dir / "checkpoints").mkdir()
    (run_dir / STAMP_FILE).unlink()
    assert "no record" in stale_reason(run_dir, stamp)


def test_a_demo_run_stopped_by_a_signal_prints_no_table(tmp_path, monkeypatch):
    from timesformer_jax import scheme_comparison as demo
    from timesformer_jax.data import builders
    from timesformer_jax.train import loop
    from timesformer_jax.train.loop import RunSummary

    class Prepared:
        version = "1.2.0"

        def download_and_prepare(self):
            pass

    def stopped_run(config, workdir, log):
        return RunSummary(str(workdir), "divided_space_time", 0, 700, 11250, 1.0, 1.0, stopped_by="SIGINT")

    monkeypatch.setattr(builders, "dataset_builder", lambda *args: Prepared())
    monkeypatch.setattr(loop, "train_and_evaluate", stopped_run)
    monkeypatch.setattr(loop, "evaluate_checkpoint", lambda *a, **k: pytest.fail("a stopped run was evaluated"))
    config = load_config_file(Path(__file__).resolve().parents[1] / "configs" / "demo.py", "divided_space_time")
    with pytest.raises(demo.DemoStopped, match="stopped by SIGINT at step 700 of 11250.*again to resume"):
        demo.run_demo(lambda scheme: config, ["divided_space_time"], tmp_path, log=lambda message: None)
