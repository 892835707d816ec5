"""The installed package as a user meets it: one `timesformer` command, one flag style (either spelling accepted,
"did you mean" for a typo), shipped configs by name, and exports for several platforms from one machine."""
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax import export

import timesformer_jax
from timesformer_jax.cli import main as cli
from timesformer_jax.flag_spelling import ArgumentParser, respelled
from timesformer_jax.inference.export import check_platforms, export_model
from timesformer_jax.train.config import config_path, load_config_file, shipped_configs

TOOLS = ("predict", "features", "attention", "export", "convert", "build-dataset", "train", "eval", "compile",
         "demo", "benchmark")


def test_the_command_lists_every_tool_and_suggests_for_a_typo(capsys):
    assert cli.main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert set(TOOLS) <= set(listed)
    assert cli.main(["predcit"]) == 2
    assert "did you mean predict?" in capsys.readouterr().err
    assert cli.main([]) == 2


@pytest.mark.parametrize("spelling", ["--top_k", "--top-k"])
def test_argparse_tools_take_either_spelling(spelling):
    parser = ArgumentParser(prog="t")
    parser.add_argument("--top_k", type=int)
    parser.add_argument("--num_heads", type=int)
    assert parser.parse_args([spelling, "3", "--num-heads=2"]).top_k == 3


def test_an_unknown_flag_names_the_closest(capsys):
    parser = ArgumentParser(prog="t")
    parser.add_argument("--sampling_rate", type=int)
    with pytest.raises(SystemExit):
        parser.parse_args(["--sampling-rat", "3"])
    assert "unknown flag --sampling-rat (did you mean --sampling_rate?)" in capsys.readouterr().err


def test_respelling_rules():
    known = ["manual_dir", "data_dir", "grid", "config", "top-k"]
    assert respelled(["--manual-dir", "x", "--data_dir=y", "--top_k=3"], known) == [
        "--manual_dir", "x", "--data_dir=y", "--top-k=3"]
    # config overrides are snake_case fields; absl negations; values and positional arguments untouched
    assert respelled(["--config.model.num-heads=2", "--no-grid", "--no_grid", "a-b", "--"], known) == [
        "--config.model.num_heads=2", "--nogrid", "--nogrid", "a-b", "--"]
    assert respelled(["--", "--manual-dir"], known) == ["--", "--manual-dir"]  # after --: not flags
    assert respelled(["--unknown-flag"], known) == ["--unknown-flag"]  # left for the parser to report


def test_shipped_configs_load_by_name_and_paths_still_work(tmp_path):
    names = set(shipped_configs())
    assert {"k400_base", "k400_hr", "k400_large", "ssv2_base", "demo"} <= names
    by_name = load_config_file("k400_base", "joint_space_time")
    by_path = load_config_file(config_path("k400_base.py"), "joint_space_time")
    assert by_name.model.attention_type == by_path.model.attention_type == "joint_space_time"
    own = tmp_path / "k400_base.py"  # a user's file of the same name wins over the shipped one
    own.write_text("import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict({'mine': 1})\n")
    assert config_path(own) == own and load_config_file(own).mine == 1
    with pytest.raises(FileNotFoundError, match="k400_bas.*shipped one.*k400_base"):
        config_path("k400_bas")


def test_one_export_serves_cpu_cuda_and_tpu(tmp_path):
    module = timesformer_jax.create_model("timesformer_tiny", num_classes=3, num_frames=2, image_size=32)
    params = jax.jit(module.init)(jax.random.key(0), np.zeros(module.clip_shape(), np.float32))["params"]
    model = timesformer_jax.PretrainedTimeSformer(module.clone(attention_impl="cudnn"), params)
    path, sidecar = export_model(model, tmp_path / "m.jax", platforms="cpu,cuda,tpu")
    restored = export.deserialize(path.read_bytes())
    assert restored.platforms == ("cpu", "cuda", "tpu")
    # cuDNN's kernel cannot run on the CPU or a TPU: the file holds XLA's attention, and says so
    assert "cudnn" not in restored.mlir_module() and "xla" in sidecar.read_text()
    clip = np.random.default_rng(0).normal(size=(3, 2, 32, 32, 3)).astype(np.float32)
    expected = jax.jit(module.apply)({"params": params}, clip)
    np.testing.assert_allclose(restored.call(clip), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="among cpu, cuda, rocm, tpu; got gpu"):
        check_platforms("gpu")


def test_python_dash_m_is_the_command():
    done = subprocess.run([sys.executable, "-m", "timesformer_jax", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "build-dataset" in done.stdout


def test_config_flag_takes_a_shipped_name(capsys):
    from timesformer_jax.train.config_cli import with_shipped_config

    (_, flag) = with_shipped_config(["timesformer train", "--config=k400_base:joint_space_time"])
    assert flag == f"--config={config_path('k400_base')}:joint_space_time"
    assert with_shipped_config(["p", "--config", "demo"])[2] == str(config_path("demo"))
    with pytest.raises(SystemExit):
        with_shipped_config(["p", "--config", "k400_bas"])
    assert "no config file 'k400_bas'" in capsys.readouterr().err


def test_library_chatter_is_filtered_and_real_warnings_are_not():
    import logging

    def kept(message, path):
        return cli._not_library_chatter(logging.LogRecord("absl", logging.WARNING, path, 1, message, None, None))

    site = "/venv/lib/python3.11/site-packages"
    assert not kept("calling map_fn_v2 (from tensorflow.python.ops.map_fn) with dtype is deprecated",
                    f"{site}/tensorflow/python/util/deprecation.py")
    assert not kept("`FeatureConnector.dtype` is deprecated", f"{site}/tensorflow_datasets/core/features/feature.py")
    assert not kept("Requested `tracked_metric`; did not provide metrics.", f"{site}/orbax/checkpoint/checkpoint_manager.py")
    assert kept("Failed to save checkpoint: disk full", f"{site}/orbax/checkpoint/checkpoint_manager.py")
    assert kept("train_step is deprecated", "/work/my_code.py")  # not a library's own deprecation
