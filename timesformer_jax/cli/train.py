"""Train a TimeSformer: `timesformer train --config configs/k400_base.py --workdir DIR`.

Any config field can be overridden (`--config.batch_size=16`, `--config.model.attention_type=joint_space_time`,
`--config.init_checkpoint=vit_base.npz`). Rerunning the same command resumes from the workdir's latest
checkpoint, and so does `timesformer train --workdir DIR` alone (the run's stored config.json). A rerun may
change the learning rate and schedule, the run length, cadences, batch sizes and the mesh (listed in one line);
a change of what the checkpoints hold (architecture, classes, dataset, optimizer) is refused naming each field,
with nothing touched. One run per workdir: a second exits naming the holder's host and PID. SIGTERM / Ctrl-C
save a checkpoint at the next step and exit with status 143 / 130.

Several processes (hosts): each runs the same command; on TPU VMs and SLURM add `--distributed=on`, elsewhere
pass `--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (or set JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID).
"""
import os
import signal
import sys

from absl import flags, logging
from ml_collections import config_flags

from timesformer_jax.cli.absl_command import run_absl
from timesformer_jax.parallel.distributed import define_distributed_flags, initialize_from_flags
from timesformer_jax.train.config_cli import parse_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py[:arg]); default: the workdir's stored config.json.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, plots and reports.")
_DISTRIBUTED_FLAGS = define_distributed_flags()
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TFDS's per-read INFO lines would drown the progress bar
    initialize_from_flags(_DISTRIBUTED_FLAGS)
    from timesformer_jax.train.checkpointing import CheckpointSaveError
    from timesformer_jax.train.loop import NonFiniteLossError, train_and_evaluate
    from timesformer_jax.train.workdir_lock import WorkdirInUseError

    if _CONFIG.value is None:
        print(f"error: --config is required: {_WORKDIR.value} holds no run (config.json) to resume", file=sys.stderr)
        return 1
    try:
        summary = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (NonFiniteLossError, CheckpointSaveError, WorkdirInUseError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)  # DamagedCheckpointError, RunConfigError, WorkdirError: ValueErrors
        return 1
    if summary.stopped_by in ("SIGTERM", "SIGINT"):
        # Everything is saved and closed: skip the interpreter's teardown (TensorFlow's and orbax's threads,
        # 3-9 s measured, benchmarks/stop_latency.py) so the stop fits a preemption's grace period.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signal.Signals[summary.stopped_by].value)
    return 0


def run(argv: list[str] | None = None) -> None:
    """`timesformer train ARGS` (argv: ARGS); exits with the command's status."""
    run_absl(main, __doc__, "train", argv, parse_flags)
