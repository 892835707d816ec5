"""`python tools/summarize.py ARGS` is `timesformer summarize ARGS` (timesformer_jax/cli/summarize.py)."""
import sys

from timesformer_jax.cli.summarize import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
