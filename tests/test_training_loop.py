"""The training loop on the CI-size generated dataset: resume equals a straight run, SIGTERM saves and resumes,
a non-finite loss stops with the last good checkpoint kept, pretrained initialisation, the CLI tools."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from timesformer_jax.train.checkpointing import Checkpointer
from timesformer_jax.train.config import load_config_file
from timesformer_jax.train.experiment import build_experiment
from timesformer_jax.train.workdir import checkpoint_dir
from timesformer_jax.train.loop import NonFiniteLossError, train_and_evaluate

REPO = Path(__file__).resolve().parents[1]
LEARN_EPOCHS = 30


def load_config(name: str, arg: str):
    return load_config_file(REPO / "configs" / f"{name}.py", arg)


def tiny_config(data_dir, attention_type="divided_space_time", **top_level):
    """The demo config on the CI data, with a tiny model so each step takes milliseconds."""
    config = load_config("demo", f"{attention_type},ci")
    config.dataset.data_dir = str(data_dir)
    config.model.update(hidden_size=32, depth=2, num_heads=2, mlp_dim=64, num_frames=4, drop_path_rate=0.1)
    config.clip.sampling_rate = 4
    config.batch_size = 8
    config.eval_batch_size = 16
    config.dataset.eval_split = "test[:16]"
    config.log_every_steps = 1
    config.update(top_level)
    return config


def restored_state(workdir, config, step=None):
    exp = build_experiment(config)
    checkpointer = Checkpointer(checkpoint_dir(workdir))
    state, meta = checkpointer.restore(exp.abstract, exp.shardings, step=step)
    checkpointer.close()
    return jax.device_get(state), meta


def assert_trees_equal(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_stop_and_resume_equals_straight_run(data_dir, tmp_path, monkeypatch):
    # 30 training videos per host and batch 8: 3 steps per epoch, so the resume happens inside epoch 2.
    config = tiny_config(data_dir, max_steps=5)
    config.dataset.train_split = "train[:30]"
    config.eval_every_epochs = 1  # evaluations at steps 3 and 5
    from timesformer_jax import figures
    from timesformer_jax.train import loop

    drawn = []
    monkeypatch.setattr(loop, "plot_curves", lambda *a, **k: drawn.append("curves"))
    monkeypatch.setattr(figures, "plot_confusion", lambda *a, **k: drawn.append("confusion"))
    straight = train_and_evaluate(config, tmp_path / "straight", log=lambda m: None)
    monkeypatch.undo()
    assert (straight.first_step, straight.last_step) == (0, 5)
    history = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history if r["kind"] == "eval"] == [3, 5]
    assert sorted(drawn) == ["confusion", "curves"]  # figures once, when the run ends: none between steps

    config.max_steps = 4
    first = train_and_evaluate(config, tmp_path / "split", log=lambda m: None)
    config.max_steps = 5
    messages = []
    second = train_and_evaluate(config, tmp_path / "split", log=messages.append)
    assert (first.last_step, second.first_step, second.last_step) == (4, 4, 5)
    assert any("resumed from step 4" in m for m in messages)

    state_straight, _ = restored_state(tmp_path / "straight", config)
    state_split, _ = restored_state(tmp_path / "split", config)
    assert int(state_split.step) == 5
    assert_trees_equal(state_straight, state_split)  # params and optimizer state, bit for bit

    # The workdir loads as a model: the latest checkpoint's parameters and the dataset's class names.
    from timesformer_jax import load_pretrained
    from timesformer_jax.data.synthetic_motion import CLASSES

    trained = load_pretrained(tmp_path / "straight")
    assert trained.class_names == tuple(CLASSES)
    assert_trees_equal(jax.device_get(state_straight.params), jax.device_get(trained.params))

    history = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history if r["kind"] == "train"] == [1, 2, 3, 4, 5]
    for name in ("curves.png", "eval/confusion_matrix.png", "eval/confusion_matrix.csv", "summary.json"):
        assert (tmp_path / "split" / name).exists(), name


@pytest.mark.slow
def test_a_plateau_stops_the_run_and_a_rerun_trains_no_further(data_dir, tmp_path):
    # Learning rate 0: every evaluation gives the same top-1, so with patience 2 the third evaluation (the second
    # without an improvement) ends the run: 3 steps per epoch, evaluations at steps 3, 6, 9 of 30.
    config = tiny_config(data_dir)
    config.dataset.train_split = "train[:30]"
    config.optimizer.update(epochs=10, base_learning_rate=0.0)
    config.eval_every_epochs = 1
    config.stop_on_plateau.update(patience=2, min_delta=0.01, start_from_epoch=0.0)
    summary = train_and_evaluate(config, tmp_path / "run", log=lambda m: None)
    assert (summary.last_step, summary.total_steps, summary.stopped_by) == (9, 30, None)
    assert summary.plateau["step"] == 9 and summary.plateau["best_step"] == 3
    assert "stopped on a plateau at step 9" in summary.text()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["plateau"]["step"] == 9

    messages = []
    again = train_and_evaluate(config, tmp_path / "run", log=messages.append)
    assert (again.first_step, again.last_step) == (9, 9)  # decided from the stored evaluations: no more steps
    assert any("the run had ended before: stopped on a plateau at step 9" in m for m in messages)


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path):
    config = tiny_config(data_dir, max_steps=20)
    config.checkpoint.every_steps = 1
    config.optimizer.update(base_learning_rate=1e30, clip_grad_norm=None)
    config.schedule.warmup_epochs = 0.0
    with pytest.raises(NonFiniteLossError) as raised:
        train_and_evaluate(config, tmp_path, log=lambda m: None)
    message = str(raised.value)
    bad_step = int(message.split(" at step ")[1].split()[0])
    assert "is nan" in message or "is inf" in message
    assert f"last good checkpoint is step {bad_step - 1}" in message
    checkpointer = Checkpointer(checkpoint_dir(tmp_path))
    assert max(checkpointer.all_steps()) == bad_step - 1  # nothing saved from the diverged state
    checkpointer.close()
    state, _ = restored_state(tmp_path, config)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state.params))


@pytest.mark.slow
def test_init_from_converted_checkpoint_with_fresh_head(data_dir, tmp_path):
    import flax.linen as nn

    from timesformer_jax.convert.converted_checkpoint import save_converted
    from timesformer_jax.model import TimeSformer

    config = tiny_config(data_dir, max_steps=1)
    fields = dict(config.model.to_dict(), num_classes=7)  # pretrained on another label set
    video = np.zeros((1, 4, 32, 32, 3), np.float32)
    params = jax.device_get(nn.unbox(TimeSformer(**fields).init(jax.random.key(5), video)["params"]))
    params = jax.tree.map(np.asarray, params)
    save_converted(tmp_path / "pretrained", fields, params, {"source": "test"})

    config.init_checkpoint = str(tmp_path / "pretrained")
    config.optimizer.base_learning_rate = 0.0  # so the saved step-1 params are the initial ones
    config.optimizer.weight_decay = 0.0
    messages = []
    train_and_evaluate(config, tmp_path / "run", log=messages.append)
    assert any("fresh classifier head" in m for m in messages)
    state, _ = restored_state(tmp_path / "run", config)
    np.testing.assert_array_equal(state.params["blocks_1"]["attn"]["qkv"]["kernel"],
                                  params["blocks_1"]["attn"]["qkv"]["kernel"])
    np.testing.assert_array_equal(state.params["pos_embed"], params["pos_embed"])
    assert state.params["head"]["kernel"].shape == (32, 10)

    config.model.hidden_size = 48  # the architecture is the checkpoint's, whatever the config's preset says
    messages = []
    train_and_evaluate(config, tmp_path / "run2", log=messages.append)
    assert any("architecture from config.init_checkpoint: hidden_size=32" in m for m in messages)
    state, _ = restored_state(tmp_path / "run2", tiny_config(config.dataset.data_dir, max_steps=1))
    np.testing.assert_array_equal(state.params["pos_embed"], params["pos_embed"])

    config.model.num_frames = 8  # what the config does decide must still fit a converted checkpoint
    with pytest.raises(ValueError, match="does not fit the config's model"):
        train_and_evaluate(config, tmp_path / "run3", log=lambda m: None)


def run_tool(args, env_extra=None, **kwargs):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def overrides(data_dir, **fields):
    base = {"dataset.data_dir": str(data_dir), "model.hidden_size": 32, "model.depth": 2, "model.num_heads": 2,
            "model.mlp_dim": 64, "model.num_frames": 4, "clip.sampling_rate": 4, "batch_size": 8,
            "eval_batch_size": 16, "dataset.eval_split": "test[:16]", "log_every_steps": 1}
    base.update(fields)
    return [f"--config.{k}={v}" for k, v in base.items()]


@pytest.mark.slow
def test_sigterm_saves_then_rerun_resumes_on_a_sharded_mesh(data_dir, tmp_path):
    workdir = tmp_path / "run"
    # 8 simulated devices as (data=4, tensor=2): the loop's sharded path, in a subprocess of its own.
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    args = ["tools/train.py", "--config", "configs/demo.py:divided_space_time,ci", "--workdir", str(workdir),
            *overrides(data_dir, **{"mesh.data": 4, "mesh.tensor": 2, "optimizer.epochs": 50})]
    process = run_tool(args, env)
    history = workdir / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[0][-3000:]
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "stopped by SIGTERM" in output
    saved = Checkpointer(checkpoint_dir(workdir))
    stopped_at = saved.latest_step()
    saved.close()
    assert stopped_at is not None and stopped_at >= 3

    rerun = run_tool(args[:5] + overrides(data_dir, **{"mesh.data": 4, "mesh.tensor": 2, "optimizer.epochs": 50,
                                                      "max_steps": stopped_at + 2}), env)
    output = rerun.communicate(timeout=240)[0]
    assert rerun.returncode == 0, output[-3000:]
    assert f"resumed from step {stopped_at}" in output
    assert f"steps {stopped_at} -> {stopped_at + 2}" in output

    evaluated = run_tool(["tools/eval.py", "--config", "configs/demo.py:divided_space_time,ci", "--workdir",
                          str(workdir), "--step", "best", *overrides(data_dir)], {"JAX_PLATFORMS": "cpu"})
    output = evaluated.communicate(timeout=240)[0]
    assert evaluated.returncode == 0, output[-3000:]
    report = json.loads(output[output.rindex("{"):])
    assert report["step"] == stopped_at + 2 and 0 <= report["video_top1"] <= 1
    assert (workdir / f"eval_step{stopped_at + 2}" / "confusion_matrix.png").exists()


@pytest.mark.slow
def test_bad_config_gives_a_clear_error(data_dir, tmp_path):
    process = run_tool(["tools/train.py", "--config", "configs/demo.py:divided_space_time,ci", "--workdir",
                        str(tmp_path), *overrides(tmp_path / "nowhere")], {"JAX_PLATFORMS": "cpu"})
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 1
    assert "is not prepared" in output and "timesformer build-dataset --dataset synthetic_motion --config ci" in output


@pytest.mark.slow
def test_demo_config_learns_on_ci_data(data_dir, tmp_path):
    """The demo's model and recipe (augmentation on) fit 40 CI training clips far above chance (10%) within a
    few seconds of training. This checks that the loop, data and recipe learn; generalising to unseen clips
    needs far more steps (the demo's measurements in README.md)."""
    config = load_config("demo", "divided_space_time,ci")
    config.dataset.data_dir = str(data_dir)
    config.dataset.train_split = config.dataset.eval_split = "train[:40]"
    config.optimizer.epochs = config.eval_every_epochs = LEARN_EPOCHS
    summary = train_and_evaluate(config, tmp_path, log=lambda m: None)
    assert summary.eval_metrics["video_top1"] > 0.5, summary.eval_metrics


@pytest.mark.slow
def test_a_train_step_compiled_ahead_of_time_trains_like_the_jitted_one(data_dir, tmp_path):
    """`--config.aot_executable`: the serialized step (here compiled for this machine's own devices, as
    tools/aot_compile.py --save does for a slice) gives the parameters the jitted step gives, and a step compiled
    for another run is refused with the difference named."""
    from timesformer_jax.train.saved_step import executable_meta, save_train_step
    from timesformer_jax.train.experiment import abstract_batches, abstract_state, step_functions

    config = tiny_config(data_dir, max_steps=3)
    config.dataset.train_split = "train[:30]"
    exp = build_experiment(config)
    train_step, _ = step_functions(exp)
    batch, _ = abstract_batches(exp)
    path = tmp_path / "train_step.bin"
    save_train_step(train_step.lower(abstract_state(exp), batch).compile(), path, executable_meta(exp))

    jitted = train_and_evaluate(config, tmp_path / "jitted", log=lambda m: None)
    messages = []
    config.aot_executable = str(path)
    precompiled = train_and_evaluate(config, tmp_path / "precompiled", log=messages.append)
    assert jitted.last_step == precompiled.last_step == 3
    assert any("precompiled executable" in m for m in messages)
    assert_trees_equal(restored_state(tmp_path / "jitted", config)[0].params,
                       restored_state(tmp_path / "precompiled", config)[0].params)

    config.batch_size = 16
    with pytest.raises(ValueError, match="global_batch: compiled for 8, this run has 16"):
        train_and_evaluate(config, tmp_path / "other", log=lambda m: None)
