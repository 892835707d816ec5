"""`make demo`: train a small divided-attention TimeSformer and a space-only one on the embedded generated
dataset (CPU is enough), evaluate both and print the comparison table (the last thing printed).

    timesformer demo [--workdir demo_runs] [--seed 0] [--schemes divided_space_time,space_only]

Everything goes to --workdir: the dataset (tfds/) and, per seed, seed<N>/ with one run per scheme (checkpoints,
curves.png, eval/ with the confusion matrix) and comparison.png. Each run trains until its evaluation stops
improving (`config.stop_on_plateau` in configs/demo.py) or its epoch budget ends. Rerunning resumes or
re-evaluates what is there.
"""
from absl import flags, logging

from timesformer_jax.cli.absl_command import run_absl
from timesformer_jax.flag_spelling import absl_flags_parser

_WORKDIR = flags.DEFINE_string("workdir", "demo_runs", "Where the dataset, runs and plots go.")
_SEED = flags.DEFINE_integer("seed", 0, "The runs' seed: model initialisation and data order.")
_SCHEMES = flags.DEFINE_list("schemes", ["divided_space_time", "space_only"], "Attention schemes to compare.")

CONFIG = "demo"  # configs/demo.py, shipped with the package


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # TFDS's per-read INFO lines would drown the progress bar
    from timesformer_jax.scheme_comparison import DemoStopped, run_demo
    from timesformer_jax.train.config import load_config_file

    try:
        table = run_demo(lambda scheme: load_config_file(CONFIG, scheme), _SCHEMES.value, _WORKDIR.value,
                         seed=_SEED.value)
    except DemoStopped as e:
        print(f"\n{e}", flush=True)
        return 130
    print("\n" + table, flush=True)


def run(argv: list[str] | None = None) -> None:
    """`timesformer demo ARGS` (argv: ARGS); exits with the command's status."""
    run_absl(main, __doc__, "demo", argv, absl_flags_parser)
