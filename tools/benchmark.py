"""`python tools/benchmark.py ARGS` is `timesformer benchmark ARGS` (timesformer_jax/cli/benchmark.py)."""
import sys

from timesformer_jax.cli.benchmark import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
