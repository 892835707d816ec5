"""Seconds from SIGTERM / SIGINT to exit of tools/train.py, in each phase: training with a save in flight,
evaluation, and the final evaluation; and whether it exits 143 / 130 with the "stopped by" line.

    python benchmarks/stop_latency.py --workdir /tmp/stop_latency --trials 3

Runs the demo config with a tiny model on the CI-size generated dataset (built into WORKDIR on first use), a
checkpoint every 2 steps so that a save is nearly always in flight, and sends the signal at a random moment of
the phase (after the phase's trigger line or checkpoint appears).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/stop_latency", "Scratch directory (dataset and runs).")
_TRIALS = flags.DEFINE_integer("trials", 3, "Signals per phase.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random delays.")


def _command(data_dir: Path, workdir: Path, last_step: int, eval_every: int) -> list[str]:
    return [sys.executable, str(ROOT / "tools/train.py"), "--config", str(ROOT / "configs/demo.py") + ":divided_space_time,ci",
            "--workdir", str(workdir), f"--config.dataset.data_dir={data_dir}", "--config.model.hidden_size=32",
            "--config.model.depth=2", "--config.model.num_heads=2", "--config.model.mlp_dim=64",
            "--config.batch_size=8", "--config.eval_batch_size=8", "--config.checkpoint.every_steps=2",
            "--config.log_every_steps=1", f"--config.max_steps={last_step}", f"--config.eval_every_epochs={eval_every}"]


def _trial(command: list[str], trigger, signum: int, delay: float) -> dict:
    """Start `command`, wait for `trigger(lines, started)` to hold, sleep `delay`, signal, time the exit."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines: list[str] = []
    stamps: list[float] = []

    def read():
        for line in iter(process.stdout.readline, ""):
            stamps.append(time.perf_counter())
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started = time.perf_counter()
    while not trigger(lines) and process.poll() is None and time.perf_counter() - started < 600:
        time.sleep(0.05)
    time.sleep(delay)
    if process.poll() is not None:
        return {"missed": True}
    sent = time.perf_counter()
    process.send_signal(signum)
    code = process.wait(timeout=600)
    exited = time.perf_counter()
    reader.join(timeout=5)
    stopped = [t for t, line in zip(stamps, lines) if "stopped by" in line]
    return {"to_exit_s": round(exited - sent, 2), "to_stopped_line_s": round(stopped[0] - sent, 2) if stopped else None,
            "code": code}


def main(argv):
    del argv
    from timesformer_jax.data.builders import dataset_builder

    work = Path(_WORKDIR.value)
    data_dir = work / "tfds"
    if not (data_dir / "synthetic_motion").exists():
        dataset_builder("synthetic_motion", str(data_dir), "ci").download_and_prepare()
    rng = random.Random(_SEED.value)
    phases = {
        # 30 steps per epoch on the CI data at batch 8: training, saving every 2 steps, no evaluation before 60.
        "training, save in flight": (60, 100, lambda lines, run: any((run / "checkpoints").glob("[0-9]*"))),
        "evaluation (periodic)": (120, 1, lambda lines, run: any("evaluating at step" in l for l in lines)),
        "final evaluation": (30, 100, lambda lines, run: any("evaluating at step 30" in l for l in lines)),
    }
    for phase, (last_step, eval_every, trigger) in phases.items():
        for trial in range(_TRIALS.value):
            for signum in (signal.SIGTERM, signal.SIGINT)[: 1 if trial else 2]:
                run = work / f"run_{phase.split()[0]}_{trial}_{signum}"
                subprocess.run(["rm", "-rf", str(run)], check=True)
                result = _trial(_command(data_dir, run, last_step, eval_every),
                                lambda lines, run=run: trigger(lines, run), signum, rng.uniform(0.0, 1.0))
                print(f"{phase}: {signal.Signals(signum).name} -> {result}", flush=True)


if __name__ == "__main__":
    app.run(main)
