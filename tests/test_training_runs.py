"""A training run as a user meets it: reruns with changed configs, two trainers on one workdir, a diverging run,
config mistakes, damaged files in a workdir, and the test protocol that travels with the trained weights."""
import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from test_training_loop import run_tool, tiny_config

from timesformer_jax.train import loop
from timesformer_jax.train.checkpointing import Checkpointer, CheckpointLayoutError, CheckpointSaveError
from timesformer_jax.train.config import config_problems
from timesformer_jax.train.experiment import build_experiment
from timesformer_jax.train.workdir import checkpoint_dir
from timesformer_jax.train.loop import NonFiniteLossError, WorkdirError, prepare_workdir, train_and_evaluate
from timesformer_jax.train.run_record import RunConfigError
from timesformer_jax.train.workdir_lock import LOCK_FILE, WorkdirInUseError, acquire, release

PROTOCOL_KEYS = ["num_frames", "sampling", "sampling_rate", "target_fps", "crop_size", "spatial_crops",
                 "temporal_views", "mean", "std", "resize"]


def quiet(message):
    del message


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A tiny run of 2 steps with a checkpoint after each (steps 1 and 2), and its config."""
    config = tiny_config(data_dir, max_steps=2)
    config.checkpoint.every_steps = 1
    workdir = tmp_path_factory.mktemp("trained") / "run"
    train_and_evaluate(config, workdir, log=quiet)
    return workdir, config


@pytest.fixture
def run_copy(trained, tmp_path):
    workdir, config = trained
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    return copy, config.copy_and_resolve_references()


def listing(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def saved_steps(workdir):
    checkpointer = Checkpointer(checkpoint_dir(workdir))
    steps = sorted(checkpointer.all_steps())
    checkpointer.close()
    return steps


@pytest.mark.slow
def test_a_rerun_that_changes_the_architecture_is_refused_and_touches_nothing(run_copy):
    workdir, config = run_copy
    before = listing(workdir)
    config.model.depth = 3
    config.model.num_heads = 4
    with pytest.raises(RunConfigError) as refused:
        train_and_evaluate(config, workdir, log=quiet)
    message = str(refused.value)
    assert "model.depth 2 -> 3" in message and "model.num_heads 2 -> 4" in message
    assert listing(workdir) == before  # nothing moved aside, nothing written
    assert not (workdir / "checkpoints.damaged").exists()


@pytest.mark.slow
def test_a_run_from_before_scanned_blocks_is_not_resumed_scanned(run_copy):
    """A workdir whose config.json predates `model.scan_blocks` holds unrolled blocks: a config that scans is
    refused naming the field, before any checkpoint is touched."""
    workdir, config = run_copy
    stored = json.loads((workdir / "config.json").read_text())
    del stored["model"]["scan_blocks"]
    (workdir / "config.json").write_text(json.dumps(stored))
    before = listing(workdir)
    config.model.scan_blocks = True
    with pytest.raises(RunConfigError, match="model.scan_blocks False -> True"):
        train_and_evaluate(config, workdir, log=quiet)
    assert listing(workdir) == before


@pytest.mark.slow
def test_a_rerun_may_change_the_schedule_and_says_so(run_copy):
    workdir, config = run_copy
    config.max_steps = 3
    config.optimizer.base_learning_rate = 5e-4
    messages = []
    summary = train_and_evaluate(config, workdir, log=messages.append)
    assert summary.first_step == 2 and summary.last_step == 3
    changed = [m for m in messages if m.startswith("config changed")]
    assert len(changed) == 1 and "optimizer.base_learning_rate 0.001 -> 0.0005" in changed[0]
    assert "max_steps 2 -> 3" in changed[0]
    history = [json.loads(line) for line in (workdir / "config_changes.jsonl").read_text().splitlines()]
    assert history[-1]["changes"]["optimizer.base_learning_rate"] == [0.001, 0.0005]
    assert json.loads((workdir / "config.json").read_text())["max_steps"] == 3


@pytest.mark.slow
def test_a_checkpoint_of_another_layout_is_not_called_damaged(run_copy):
    workdir, config = run_copy
    (workdir / "config.json").unlink()  # no stored config to compare with: the checkpoint's own layout decides
    config.model.depth = 3
    with pytest.raises(CheckpointLayoutError, match="another model or optimizer"):
        train_and_evaluate(config, workdir, log=quiet)
    assert saved_steps(workdir) == [1, 2] and not (workdir / "checkpoints.damaged").exists()


@pytest.mark.slow
def test_a_second_trainer_exits_naming_the_holder(run_copy):
    workdir, config = run_copy
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (workdir / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid,
                                                      "since": "2026-01-01T00:00:00"}))
        config.max_steps = 3
        with pytest.raises(WorkdirInUseError) as in_use:
            train_and_evaluate(config, workdir, log=quiet)
        assert f"PID {holder.pid}" in str(in_use.value) and str(workdir) in str(in_use.value)
        assert saved_steps(workdir) == [1, 2]
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and the next run takes over, and removes the lock at its end
    messages = []
    train_and_evaluate(config, workdir, log=messages.append)
    assert any("is gone; taking over" in m for m in messages)
    assert saved_steps(workdir)[-1] == 3 and not (workdir / LOCK_FILE).exists()


def test_the_lock_is_one_per_workdir_across_processes(tmp_path):
    """Two processes racing for one workdir: exactly one gets it."""
    script = ("import sys, time; from timesformer_jax.train.workdir_lock import acquire, WorkdirInUseError\n"
              "try:\n    acquire(sys.argv[1]); print('got', flush=True); time.sleep(3)\n"
              "except WorkdirInUseError as e:\n    print('refused', e, flush=True)\n")
    racers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
    outputs = sorted(r.communicate(timeout=60)[0].split()[0] for r in racers)
    assert outputs == ["got", "refused"]
    path = acquire(tmp_path, quiet)  # both exited without release: the stale lock is taken over
    release(path)
    assert not path.exists()


@pytest.mark.slow
def test_a_diverging_state_is_never_saved(data_dir, tmp_path, monkeypatch):
    # check_config refuses a NaN learning rate up front; here it is let through to reach the loop's own check,
    # which must hold for any cause of a non-finite state (overflowing updates, bad data).
    monkeypatch.setattr(loop, "check_config", lambda config: None)
    monkeypatch.setattr("timesformer_jax.train.experiment.check_config", lambda config: None)
    config = tiny_config(data_dir, max_steps=2)
    config.checkpoint.every_steps = 1
    config.optimizer.base_learning_rate = float("nan")
    with pytest.raises(NonFiniteLossError) as stopped:
        train_and_evaluate(config, tmp_path, log=quiet)
    assert "non-finite values after step 1" in str(stopped.value)
    assert saved_steps(tmp_path) == []  # the NaN state of step 1 was not saved


def test_config_values_that_make_no_sense_are_named_before_any_work(data_dir, tmp_path):
    config = tiny_config(data_dir)
    config.batch_size = -8
    config.checkpoint.every_steps = 0
    config.clip.sampling_rate = 0
    config.optimizer.base_learning_rate = float("nan")
    config.model.num_frames = 0
    problems = config_problems(config)
    for field in ("config.batch_size", "config.checkpoint.every_steps", "config.clip.sampling_rate",
                  "config.optimizer.base_learning_rate", "num_frames"):
        assert any(field in p for p in problems), (field, problems)
    with pytest.raises(ValueError, match="config.batch_size must be a positive integer, got -8"):
        train_and_evaluate(config, tmp_path / "never", log=quiet)
    assert not (tmp_path / "never").exists()
    assert config_problems(tiny_config(data_dir)) == []


@pytest.mark.slow
def test_flag_mistakes_are_one_error_line(tmp_path):
    base = ["tools/train.py", "--config", "configs/demo.py:divided_space_time,ci", "--workdir", str(tmp_path / "w")]
    for extra, expected in ((["--config.bogus_field=1", "--config.batchsize=4"], "has no field 'bogus_field'"),
                            (["--config.batch_size=0"], "config.batch_size must be a positive integer, got 0")):
        process = run_tool(base + extra, {"JAX_PLATFORMS": "cpu"})
        output = process.communicate(timeout=120)[0]
        assert process.returncode == 1, output
        errors = [line for line in output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and expected in errors[0], output
        assert "Traceback" not in output
        if "--config.batchsize=4" in extra:
            assert "did you mean config.batch_size" in errors[0]


def test_workdirs_that_cannot_be_written_are_one_error(tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(WorkdirError, match="exists and is not a folder"):
        prepare_workdir(a_file)
    with pytest.raises(WorkdirError, match="cannot create"):
        prepare_workdir(a_file / "below")
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a read-only folder looks to a non-root user
    with pytest.raises(WorkdirError, match="is not writable"):
        prepare_workdir(tmp_path / "ro")


@pytest.mark.slow
def test_unreadable_metrics_and_missing_manifests_are_damage(run_copy):
    workdir, config = run_copy
    exp = build_experiment(config)  # the run's state layout; nothing is compiled or trained here
    (workdir / "checkpoints" / "2" / "manifest.json").unlink()
    messages = []
    checkpointer = Checkpointer(checkpoint_dir(workdir), log=messages.append)
    state, _ = checkpointer.restore_intact(exp.abstract, exp.shardings, messages.append)
    checkpointer.close()
    assert int(state.step) == 1
    assert any("checkpoint 2" in m and "manifest.json is missing" in m for m in messages)

    metrics = workdir / "checkpoints" / "1" / "metrics" / "metrics"
    metrics.parent.mkdir(exist_ok=True)
    metrics.write_text("garbage")  # orbax reads it when it opens the folder
    messages = []
    checkpointer = Checkpointer(checkpoint_dir(workdir), log=messages.append)
    assert checkpointer.restore_intact(exp.abstract, exp.shardings, messages.append) is None
    checkpointer.close()
    assert any("checkpoint 1" in m and "metrics file" in m for m in messages)
    assert len(list((workdir / "checkpoints.damaged").iterdir())) == 2


@pytest.mark.slow
def test_a_failed_save_names_the_checkpoint_and_what_is_kept(run_copy, monkeypatch):
    import orbax.checkpoint as ocp

    workdir, config = run_copy

    def disk_full(self, step, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full)
    config.max_steps = 3
    with pytest.raises(CheckpointSaveError) as failed:
        train_and_evaluate(config, workdir, log=quiet)
    message = str(failed.value)
    assert "checkpoint 3" in message and "No space left on device" in message and "step 2, is intact" in message
    assert saved_steps(workdir) == [1, 2]


@pytest.mark.slow
def test_a_workdir_reads_as_its_params_alone(run_copy, monkeypatch):
    """`load_pretrained(workdir)` reads only the parameters: no optimizer is built, the values are the full
    state's, and the files are still verified."""
    import timesformer_jax
    from timesformer_jax.train import optimizer
    from timesformer_jax.train.checkpointing import DamagedCheckpointError

    workdir, config = run_copy
    exp = build_experiment(config)
    checkpointer = Checkpointer(checkpoint_dir(workdir))
    state, _ = checkpointer.restore(exp.abstract, exp.shardings)  # the whole TrainState, the training way
    checkpointer.close()

    def no_optimizer(*args, **kwargs):
        raise AssertionError("reading a trained model built an optimizer")

    monkeypatch.setattr(optimizer, "create_optimizer", no_optimizer)
    loaded = timesformer_jax.load_pretrained(workdir)
    flat = dict(jax.tree_util.tree_leaves_with_path(loaded.params))
    for path, value in jax.tree_util.tree_leaves_with_path(state.params):
        np.testing.assert_array_equal(np.asarray(flat[path]), np.asarray(value))
    assert len(flat) == len(jax.tree.leaves(state.params))

    latest = max(int(p.name) for p in checkpoint_dir(workdir).iterdir() if p.name.isdigit())
    target = max((f for f in (checkpoint_dir(workdir) / str(latest) / "state").rglob("*") if f.is_file()
                  and "manifest" not in f.name), key=lambda f: f.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DamagedCheckpointError, match=f"checkpoint {latest} .* is damaged"):
        timesformer_jax.load_pretrained(workdir)


@pytest.mark.slow
def test_the_trained_protocol_travels_to_predict_and_export(trained, tmp_path):
    from timesformer_jax.pretrained import load_pretrained
    from timesformer_jax.data.video_io import write_video
    from timesformer_jax.inference.export import export_model
    from timesformer_jax.inference.predict_files import predict_files

    workdir, config = trained
    video = tmp_path / "clip.mp4"
    write_video(video, np.random.default_rng(0).integers(0, 255, (40, 32, 48, 3), dtype=np.uint8), fps=10)
    messages = []
    predict_files(str(workdir), [video], json_path=str(tmp_path / "p.json"), log=messages.append)
    record = json.loads((tmp_path / "p.json").read_text())[0]
    # the run's clips: 4 frames 4 apart at the CI data's 10 fps, 32 px, 1 clip x 1 crop (configs/demo.py)
    expected = {"num_frames": 4, "sampling": "dense", "sampling_rate": 4, "target_fps": 10.0, "crop_size": 32,
                "spatial_crops": 1, "temporal_views": 1, "mean": [0.45] * 3, "std": [0.225] * 3,
                "resize": "bilinear"}
    assert list(record["protocol"]) == PROTOCOL_KEYS and record["protocol"] == expected
    assert sum("test protocol:" in m and "the checkpoint's" in m for m in messages) == 1

    predict_files(str(workdir), [video], json_path=str(tmp_path / "q.json"), log=quiet, num_spatial_crops=3)
    assert json.loads((tmp_path / "q.json").read_text())[0]["protocol"]["spatial_crops"] == 3  # flags override

    _, sidecar = export_model(load_pretrained(workdir), tmp_path / "model.jax")
    description = json.loads(sidecar.read_text())
    assert description["protocol"] == expected
    assert description["model"]["dtype"] == "float32"


def test_hf_and_official_checkpoints_carry_their_protocol(tmp_path):
    from timesformer_jax.bench.reference import import_torchvision_without_c_ops

    import_torchvision_without_c_ops()
    import torch
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    from timesformer_jax.convert.conversion import convert_to_directory
    from timesformer_jax.pretrained import load_pretrained

    torch.manual_seed(0)
    hf_config = TimesformerConfig(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, num_labels=3)
    model = TimesformerForVideoClassification(hf_config)
    model.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps(
        {"crop_size": {"height": 32, "width": 32}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
         "size": {"shortest_edge": 32}, "image_processor_type": "VideoMAEImageProcessor"}))
    loaded = load_pretrained(tmp_path / "hf")
    assert loaded.protocol["mean"] == [0.5] * 3 and loaded.protocol["std"] == [0.5] * 3
    assert loaded.protocol["sampling_rate"] == 32 and loaded.protocol["spatial_crops"] == 3  # official rest
    convert_to_directory(tmp_path / "hf", tmp_path / "converted")  # tools/convert.py keeps it
    assert load_pretrained(tmp_path / "converted").protocol == loaded.protocol

    # an official training checkpoint's wrapper around the same tensors (HF names are read as the official ones)
    torch.save({"model_state": model.state_dict()}, tmp_path / "official.pyth")
    official = load_pretrained(tmp_path / "official.pyth", num_heads=2)
    assert official.protocol == {"num_frames": 4, "sampling": "dense", "sampling_rate": 32, "target_fps": 30.0,
                                 "crop_size": 32, "spatial_crops": 3, "temporal_views": 1, "mean": [0.45] * 3,
                                 "std": [0.225] * 3, "resize": "bilinear"}
