"""Evaluate a checkpoint: `timesformer eval --workdir DIR [--step N|best]`.

The run's own config (DIR/config.json, stored by `timesformer train`) is used; `--config.FIELD=VALUE` overrides it
(e.g. `--config.clip.num_spatial_crops=1`), and `--config FILE` replaces it.

Multi-view test (config.clip.num_temporal_views x num_spatial_crops per video); prints clip and video
top-1/top-5 and writes metrics.json, per_class_accuracy.csv and confusion_matrix.{csv,png} to
DIR/eval_step<N>/. Multi-process flags are those of `timesformer train`.
"""
import json
import sys

from absl import flags, logging
from ml_collections import config_flags

from timesformer_jax.cli.absl_command import run_absl
from timesformer_jax.parallel.distributed import define_distributed_flags, initialize_from_flags
from timesformer_jax.train.config_cli import parse_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/*.py[:arg]); default: the workdir's stored config.json.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/.")
_STEP = flags.DEFINE_string("step", None, "Checkpoint step to evaluate, or 'best'; default: the latest.")
_DISTRIBUTED_FLAGS = define_distributed_flags()
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TFDS's per-read INFO lines would drown the progress bar
    initialize_from_flags(_DISTRIBUTED_FLAGS)
    from timesformer_jax.train.checkpointing import DamagedCheckpointError
    from timesformer_jax.train.loop import evaluate_checkpoint

    if _CONFIG.value is None:
        print(f"error: {_WORKDIR.value} holds no config.json (not a training workdir?); give --config",
              file=sys.stderr)
        return 1
    step = _STEP.value
    if step not in (None, "best") and not step.isdigit():
        print(f"error: --step must be a step number or 'best', got {step!r}", file=sys.stderr)
        return 1
    try:
        step, metrics = evaluate_checkpoint(_CONFIG.value, _WORKDIR.value, step)
    except (DamagedCheckpointError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"step": step, **{k: round(v, 6) for k, v in metrics.items()}}, indent=2))
    return 0


def run(argv: list[str] | None = None) -> None:
    """`timesformer eval ARGS` (argv: ARGS); exits with the command's status."""
    run_absl(main, __doc__, "eval", argv, parse_flags)
