"""Damaged checkpoints: every case the operator's report found, on a tiny run (checkpoints at steps 2 and 4).

Each damage is applied to the newest checkpoint (4); the restart must name it in one line, move it aside, resume
from 2 and end where an undamaged run resumed from 2 ends (runs are deterministic functions of config and
step). With every checkpoint damaged the run stops with one error naming each. Converted checkpoints are
checked by `load_pretrained`. The references are the files' own bytes (the damage is made by hand) and the
undamaged runs.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from timesformer_jax.integrity import MANIFEST_FILE, verify_manifest, write_manifest
from timesformer_jax.train.checkpointing import DamagedCheckpointError
from timesformer_jax.train.config import load_config_file
from timesformer_jax.train.loop import train_and_evaluate

REPO = Path(__file__).resolve().parents[1]


def tiny_config(data_dir, max_steps):
    config = load_config_file(REPO / "configs" / "demo.py", "divided_space_time,ci")
    config.dataset.data_dir = str(data_dir)
    config.model.update(hidden_size=32, depth=2, num_heads=2, mlp_dim=64)
    config.batch_size = 8
    config.eval_batch_size = 16
    config.dataset.train_split = "train[:30]"
    config.dataset.eval_split = "test[:16]"
    config.checkpoint.every_steps = 2
    config.checkpoint.keep = 5
    config.eval_every_epochs = 5  # 3 steps an epoch: no evaluation (nor the save after it) before the last step
    config.log_every_steps = 1
    config.max_steps = max_steps
    return config


@pytest.fixture(scope="module")
def template(data_dir, tmp_path_factory):
    """A run to step 4 (checkpoints 2 and 4)."""
    run = tmp_path_factory.mktemp("template") / "run"
    train_and_evaluate(tiny_config(data_dir, 4), run, log=lambda m: None)
    return run


@pytest.fixture(scope="module")
def reference(template, data_dir, tmp_path_factory):
    """The template resumed from checkpoint 2 (4 removed) to step 5: where an undamaged resume from 2 ends."""
    reference = tmp_path_factory.mktemp("reference") / "run"
    shutil.copytree(template, reference)
    shutil.rmtree(reference / "checkpoints" / "4")
    train_and_evaluate(tiny_config(data_dir, 5), reference, log=lambda m: None)
    return reference


def final_params(workdir):
    from timesformer_jax.train.checkpointing import Checkpointer
    from timesformer_jax.train.workdir import checkpoint_dir

    checkpointer = Checkpointer(checkpoint_dir(workdir))
    step = checkpointer.latest_step()
    checkpointer.close()
    return stored_params(workdir, step)


def stored_params(workdir, step):
    """(step, params) of checkpoint `step` read straight from its files by orbax (no verification)."""
    import orbax.checkpoint as ocp

    from timesformer_jax.train.workdir import checkpoint_dir

    restored = ocp.StandardCheckpointer().restore(checkpoint_dir(workdir) / str(step) / "state")
    return step, restored["params"]


def largest_data_file(step_dir: Path) -> Path:
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and "/d/" in p.as_posix()]
    return max(files, key=lambda p: p.stat().st_size)


def flip_bytes(step_dir):
    path = largest_data_file(step_dir)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def truncate(step_dir):
    path = largest_data_file(step_dir)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete_data_file(step_dir):
    largest_data_file(step_dir).unlink()


def delete_metadata(step_dir):
    (step_dir / "state" / "_METADATA").unlink()


def garble_meta(step_dir):
    (step_dir / "meta" / "metadata").write_text('{"steps_per_epoch": 3, "glob')


def delete_state(step_dir):
    shutil.rmtree(step_dir / "state")


DAMAGE = {
    "bit flips in a data file": (flip_bytes, "checksum differs"),
    "truncated data file": (truncate, "bytes,"),
    "deleted data file": (delete_data_file, "is missing"),
    "deleted state/_METADATA": (delete_metadata, "state/_METADATA is missing"),
    "garbled meta/metadata": (garble_meta, "meta/metadata"),
    "deleted state/": (delete_state, "is missing"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_newest_checkpoint_is_named_moved_aside_and_the_intact_one_restored(case, template, data_dir,
                                                                                  tmp_path):
    from timesformer_jax.train.checkpointing import Checkpointer
    from timesformer_jax.train.experiment import build_experiment
    from timesformer_jax.train.workdir import checkpoint_dir

    workdir = tmp_path / "run"
    shutil.copytree(template, workdir)
    _, intact_params = stored_params(workdir, 2)
    damage, expected = DAMAGE[case]
    damage(workdir / "checkpoints" / "4")
    exp = build_experiment(tiny_config(data_dir, 5))
    messages = []
    checkpointer = Checkpointer(checkpoint_dir(workdir))
    state, _ = checkpointer.restore_intact(exp.abstract, exp.shardings, messages.append)
    checkpointer.close()
    damaged = [m for m in messages if "is damaged" in m]
    assert len(damaged) == 1, messages
    assert damaged[0].startswith(f"checkpoint 4 in {workdir / 'checkpoints'} is damaged (")
    assert expected in damaged[0] and "resuming from 2" in damaged[0]
    assert "\n" not in damaged[0]
    # Moved aside, not deleted; what was restored is checkpoint 2 as its files hold it.
    aside = list((workdir / "checkpoints.damaged").iterdir())
    assert len(aside) == 1 and aside[0].name.startswith("4-") and (aside[0] / MANIFEST_FILE).exists()
    assert int(state.step) == 2
    for a, b in zip(jax.tree.leaves(jax.device_get(state.params)), jax.tree.leaves(intact_params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_training_past_a_damaged_checkpoint_equals_an_undamaged_resume(template, reference, data_dir, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(template, workdir)
    flip_bytes(workdir / "checkpoints" / "4")
    messages = []
    summary = train_and_evaluate(tiny_config(data_dir, 5), workdir, log=messages.append)
    assert sum("is damaged" in m for m in messages) == 1, messages
    assert summary.first_step == 2 and summary.last_step == 5
    step, params = final_params(workdir)
    reference_step, reference_params = final_params(reference)
    assert step == reference_step == 5
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
        np.testing.assert_array_equal(a, b)


def test_non_finite_values_are_rejected_even_without_a_manifest(template, data_dir, tmp_path):
    """A checkpoint from before manifests (none written) is restored and checked: NaNs in it are damage, and
    the message never blames the learning rate."""
    run = template
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir)
    for step in ("2", "4"):
        (workdir / "checkpoints" / step / MANIFEST_FILE).unlink()
    # Overwrite step 4's parameters with NaNs through orbax itself, so only the values are wrong.
    import orbax.checkpoint as ocp

    state_dir = workdir / "checkpoints" / "4" / "state"
    state = ocp.StandardCheckpointer().restore(state_dir)
    state["params"] = jax.tree.map(lambda x: np.full_like(x, np.nan), state["params"])
    shutil.rmtree(state_dir)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(state_dir, state)
    checkpointer.wait_until_finished()
    from timesformer_jax.train.checkpointing import Checkpointer
    from timesformer_jax.train.experiment import build_experiment
    from timesformer_jax.train.workdir import checkpoint_dir

    exp = build_experiment(tiny_config(data_dir, 5))
    messages = []
    checkpointer = Checkpointer(checkpoint_dir(workdir))
    restored, _ = checkpointer.restore_intact(exp.abstract, exp.shardings, messages.append)
    checkpointer.close()
    damaged = [m for m in messages if "is damaged" in m]
    assert len(damaged) == 1 and "non-finite values" in damaged[0] and "resuming from 2" in damaged[0]
    assert int(restored.step) == 2 and not any("learning_rate" in m for m in messages)


def test_every_checkpoint_damaged_is_one_error_naming_each(template, data_dir, tmp_path):
    run = template
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir)
    flip_bytes(workdir / "checkpoints" / "4")
    delete_metadata(workdir / "checkpoints" / "2")
    with pytest.raises(DamagedCheckpointError) as error:
        train_and_evaluate(tiny_config(data_dir, 5), workdir, log=lambda m: None)
    text = str(error.value)
    assert "no intact checkpoint" in text and "4 (" in text and "2 (" in text and "checksum differs" in text
    assert sorted(p.name.split("-")[0] for p in (workdir / "checkpoints.damaged").iterdir()) == ["2", "4"]


@pytest.mark.slow
def test_train_tool_exits_1_with_one_line_when_no_checkpoint_is_intact(template, data_dir, tmp_path):
    run = template
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir)
    for step in ("2", "4"):
        truncate(workdir / "checkpoints" / step)
    command = [sys.executable, str(REPO / "tools/train.py"), "--config",
               str(REPO / "configs/demo.py") + ":divided_space_time,ci", "--workdir", str(workdir),
               f"--config.dataset.data_dir={data_dir}", "--config.model.hidden_size=32", "--config.model.depth=2",
               "--config.model.num_heads=2", "--config.model.mlp_dim=64", "--config.batch_size=8",
               "--config.dataset.train_split=train[:30]", "--config.max_steps=5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no intact checkpoint" in errors[0]
    assert "Traceback" not in result.stderr and "learning_rate" not in result.stderr


def test_manifest_detects_each_kind_of_damage(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "b.json").write_text("{}")
    write_manifest(tmp_path)
    assert verify_manifest(tmp_path) is None
    data = bytearray((tmp_path / "a" / "x.bin").read_bytes())
    data[100] ^= 1  # one bit
    (tmp_path / "a" / "x.bin").write_bytes(bytes(data))
    assert verify_manifest(tmp_path) == "a/x.bin: checksum differs"
    (tmp_path / "a" / "x.bin").write_bytes(bytes(data[:10]))
    assert verify_manifest(tmp_path) == "a/x.bin has 10 bytes, 2560 when saved"
    (tmp_path / "a" / "x.bin").unlink()
    assert verify_manifest(tmp_path) == "a/x.bin is missing"
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    assert "unreadable" in verify_manifest(tmp_path)


def test_damaged_converted_checkpoint_is_a_clear_error(tmp_path):
    from timesformer_jax import load_pretrained
    from timesformer_jax.convert.converted_checkpoint import save_converted
    from timesformer_jax.model import create_model

    fields = dict(image_size=32, num_frames=2, patch_size=16, hidden_size=16, depth=1, num_heads=2, mlp_dim=32,
                  num_classes=3)
    model = create_model("timesformer_tiny", **fields)
    import flax.linen as nn

    params = nn.unbox(model.init(jax.random.key(0), np.zeros((1, 2, 32, 32, 3), np.float32))["params"])
    directory = save_converted(tmp_path / "converted", {"attention_type": model.attention_type, **fields},
                               jax.device_get(params), {})
    assert json.loads((directory / MANIFEST_FILE).read_text())["files"]
    load_pretrained(directory)  # intact: loads
    flip_bytes_in = max((p for p in (directory / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(flip_bytes_in.read_bytes())
    data[len(data) // 2] ^= 0x10
    flip_bytes_in.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"converted checkpoint .* is damaged \(params/.*checksum differs\)"):
        load_pretrained(directory)


@pytest.mark.slow
def test_sigterm_during_evaluation_exits_143_with_the_stopped_line(data_dir, tmp_path):
    """The report's case: a signal during the final evaluation exited 0 with no "stopped by" line."""
    import threading
    import time

    command = [sys.executable, str(REPO / "tools/train.py"), "--config",
               str(REPO / "configs/demo.py") + ":divided_space_time,ci", "--workdir", str(tmp_path / "run"),
               f"--config.dataset.data_dir={data_dir}", "--config.model.hidden_size=32", "--config.model.depth=2",
               "--config.model.num_heads=2", "--config.model.mlp_dim=64", "--config.batch_size=8",
               "--config.eval_batch_size=8", "--config.max_steps=3", "--config.log_every_steps=1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    deadline = time.time() + 300
    while not any("evaluating at step 3" in line for line in lines) and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=300) == 143
    time.sleep(0.5)
    text = "".join(lines)
    assert "abandoned" in text and "stopped by SIGTERM" in text
