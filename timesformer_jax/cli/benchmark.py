"""Benchmark TimeSformer attention schemes: parameters, FLOPs (analytic and XLA's), compiled memory, and speed
against the PyTorch reference (Hugging Face transformers), reproducing the paper's Figure 3 cost comparison.

    timesformer benchmark --out benchmark_results                 # everything (grid analysis + speed cases)
    timesformer benchmark --out /tmp/b --nogrid                   # only the timed speed cases
    timesformer benchmark --out /tmp/b --speed_cases= --frames 8,16 --image_sizes 224   # only analysis
    timesformer benchmark --out /tmp/b --time_grid_up_to_tflops 2 # also time grid cases up to 2 TFLOPs

Writes `benchmark.md` (tables), `benchmark.json` (every number) and `figure3.png` to --out, and prints the
tables. Timing uses whatever device JAX sees; the reference runs on CPU with as many threads as JAX's CPU
client (every core this process may use).
"""
from absl import flags


from timesformer_jax.cli.absl_command import run_absl
from timesformer_jax.flag_spelling import absl_flags_parser
from timesformer_jax.bench.cases import GRID_FRAMES, GRID_IMAGE_SIZES, SPEED_PRESETS
from timesformer_jax.bench.suite import run_benchmark
from timesformer_jax.model import ATTENTION_TYPES

_OUT = flags.DEFINE_string("out", None, "Directory for benchmark.md, benchmark.json and figure3.png.")
_SCHEMES = flags.DEFINE_list("schemes", list(ATTENTION_TYPES), "Attention schemes of the grid.")
_FRAMES = flags.DEFINE_list("frames", [str(t) for t in GRID_FRAMES], "Frame counts of the grid (at 224 px).")
_SIZES = flags.DEFINE_list("image_sizes", [str(s) for s in GRID_IMAGE_SIZES], "Image sizes of the grid (8 frames).")
_GRID = flags.DEFINE_bool("grid", True, "Analyse the Figure 3 grid (compile-time FLOPs and memory).")
_GRID_BATCH = flags.DEFINE_integer("grid_batch_size", 1, "Clips per batch in the grid.")
_REMAT = flags.DEFINE_bool("remat", True, "Also compile each grid train step with remat (memory column).")
_TIME_GRID = flags.DEFINE_float("time_grid_up_to_tflops", 0.0,
                                "Time grid cases whose forward costs at most this many TFLOPs (0: none).")
_SPEED = flags.DEFINE_list("speed_cases", list(SPEED_PRESETS), f"Named speed cases, of {sorted(SPEED_PRESETS)}.")
_SPEED_SCHEMES = flags.DEFINE_list("speed_schemes", ["divided_space_time"], "Schemes of the speed cases.")
_SPEED_BATCH = flags.DEFINE_integer("speed_batch_size", None, "Override each speed case's batch size.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement (median reported), after 1 warm-up.")
_BUDGET = flags.DEFINE_float("budget_s", 60.0, "Stop repeating a measurement after this many seconds.")
_REFERENCE = flags.DEFINE_bool("reference", True, "Time the PyTorch reference beside ours.")
flags.mark_flags_as_required(["out"])


def main(argv):
    del argv
    run_benchmark(
        out_dir=_OUT.value,
        schemes=_SCHEMES.value,
        frames=[int(t) for t in _FRAMES.value],
        image_sizes=[int(s) for s in _SIZES.value],
        grid=_GRID.value,
        grid_batch_size=_GRID_BATCH.value,
        remat=_REMAT.value,
        time_grid_up_to_tflops=_TIME_GRID.value,
        speed_case_names=_SPEED.value,
        speed_schemes=_SPEED_SCHEMES.value,
        speed_batch_size=_SPEED_BATCH.value,
        repeats=_REPEATS.value,
        budget_s=_BUDGET.value,
        reference=_REFERENCE.value,
    )


def run(argv: list[str] | None = None) -> None:
    """`timesformer benchmark ARGS` (argv: ARGS); exits with the command's status."""
    run_absl(main, __doc__, "benchmark", argv, absl_flags_parser)
