"""Test-wide set-up and shared helpers.

* An importable torchvision for timm and transformers next to the CPU torch wheel (see
  `timesformer_jax.bench.reference.import_torchvision_without_c_ops` for why).
* `run_on_devices`: run a script in a fresh Python with N simulated CPU devices (the device count is fixed when
  JAX's backend starts, so tests that need a mesh of 8 run in a subprocess).
* `data_dir`: the CI-size generated dataset, prepared once per test process.
* The `slow` marker: the end-to-end tests (training runs, tool subprocesses, dataset builds, meshes of simulated
  devices, large compiles). `make test` skips them (`-m "not slow"`); CI (`.ci/run`) and `make test-all` run them.
"""
import os
import subprocess
import sys

import pytest

from timesformer_jax.bench.reference import import_torchvision_without_c_ops

import_torchvision_without_c_ops()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains, builds datasets, runs subprocess meshes or large compiles "
                                       "(deselect with -m 'not slow')")


def simulated_devices_env(num_devices: int) -> dict:
    """The environment of a subprocess whose JAX sees `num_devices` CPU devices."""
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}", JAX_PLATFORMS="cpu")


@pytest.fixture
def run_on_devices():
    """`run_on_devices(script, *args, devices=8, expect="OK")`: run `script` with `devices` simulated CPU devices,
    fail with its output unless it exits 0 and prints `expect`; returns its stdout."""

    def run(script: str, *args, devices: int = 8, expect: str = "OK", timeout: int = 300) -> str:
        result = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=simulated_devices_env(devices),
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr
        assert expect in result.stdout, result.stdout
        return result.stdout

    return run


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """The CI-size generated dataset (`synthetic_motion/ci`), prepared once per test process for the tests that
    train on it."""
    from timesformer_jax.data.builders import dataset_builder

    directory = tmp_path_factory.mktemp("tfds")
    dataset_builder("synthetic_motion", str(directory), "ci").download_and_prepare()
    return directory
