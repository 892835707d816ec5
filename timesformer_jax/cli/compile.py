"""Compile a training config for hardware you do not have, and see whether it fits before paying for it.

    timesformer compile --config configs/k400_large.py --target v5p-256
    timesformer compile --config configs/k400_base.py:joint_space_time --target h100x8 \
        --config.batch_size=64 --json base_joint_h100x8.json
    timesformer compile --config configs/k400_base.py --target v5litepod-256 \
        --config.batch_size=2048 --config.mesh.fsdp=8 --num_train_examples=240000 --save train_step.bin
    # then, on the slice: timesformer train --config ... (same flags) --config.aot_executable=train_step.bin
    timesformer compile --config configs/k400_base.py:joint_space_time --target v5p-8 \
        --config.batch_size=8 --config.model.attention_impl=splash      # or =xla: compare the attention kernels
    timesformer compile --config configs/k400_base.py --target v5p-8 --config.model.scan_blocks=true

Compiles the config's real train and eval steps (what `timesformer train` runs: same shardings, donation, dtypes)
for TARGET on this machine and prints per device: memory (arguments, outputs, temporaries, aliased, total,
capacity) and whether it fits, FLOPs per step, the collectives, compile time and a roofline estimate of step
time. TARGET: a Cloud TPU accelerator type (v4-128, v5p-256, v5litepod-256, v6e-256), a TPU topology
(v5p:4x4x8) or a GPU (h100, h200; h100x8 for 8 per host, --num_hosts for more hosts).

TPU targets need the `tpu` extra (in `make install`); GPU targets the `gpu-compile` extra (~2 GB:
`pip install -e '.[gpu-compile]'`). The global batch (`--config.batch_size`, `--config.eval_batch_size`) must
split over the mesh's data x fsdp devices. Exit status 0 when every step fits, 2 when one does not.
The header line names the attention kernel and whether blocks are scanned; where XLA's FLOP count would be short
(scanned blocks: a loop body counts once; splash: a kernel counts as nothing) the FLOPs are the analytic
count of model/flops.py ("analytic").
"""
import json
import os
import sys

import jax
from absl import flags
from ml_collections import config_flags

from timesformer_jax.cli.absl_command import run_absl
from timesformer_jax.train.config_cli import parse_flags

# Compile-only devices: nothing runs here, so no backend but the CPU starts (a GPU plugin would check its CUDA
# libraries, a TPU one look for chips). Set on jax's config, not the environment: the package has imported jax.
if not os.environ.get("JAX_PLATFORMS"):
    jax.config.update("jax_platforms", "cpu")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:scheme]).")
_TARGET = flags.DEFINE_string("target", None, "v5p-256, v4-128, v5litepod-256, v6e-256, v5p:4x4x8, h100x8, ...")
_NUM_HOSTS = flags.DEFINE_integer("num_hosts", 1, "GPU targets: hosts (each with the target's xN GPUs).")
_STEPS = flags.DEFINE_list("steps", ["train", "eval"], "Which steps to compile: train, eval.")
_JSON = flags.DEFINE_string("json", None, "Also write the report as JSON to this file.")
_SAVE = flags.DEFINE_string("save", None, "Also serialize the compiled train step to this file (for "
                            "`timesformer train --config.aot_executable=FILE` on the target).")
_NUM_TRAIN = flags.DEFINE_integer("num_train_examples", None, "Training split size, which fixes the compiled "
                                  "learning-rate schedule; needed with --save.")
flags.mark_flags_as_required(["config", "target"])


def main(argv):
    del argv
    from timesformer_jax.aot import compile_config, format_report, parse_target

    try:
        target = parse_target(_TARGET.value, _NUM_HOSTS.value)
        unknown = set(_STEPS.value) - {"train", "eval"}
        if unknown:
            raise ValueError(f"--steps: unknown {sorted(unknown)}; expected train and/or eval")
        report = compile_config(_CONFIG.value, target, steps=tuple(_STEPS.value), save=_SAVE.value,
                                num_train_examples=_NUM_TRAIN.value,
                                log=lambda message: print(message, file=sys.stderr, flush=True))
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_report(report))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(report.to_json(), f, indent=2)
            f.write("\n")
    return 0 if all(step.fits for step in report.steps.values()) else 2


def run(argv: list[str] | None = None) -> None:
    """`timesformer compile ARGS` (argv: ARGS); exits with the command's status."""
    run_absl(main, __doc__, "compile", argv, parse_flags)
