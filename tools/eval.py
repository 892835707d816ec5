"""`python tools/eval.py ARGS` is `timesformer eval ARGS` (timesformer_jax/cli/evaluate.py)."""
import sys

from timesformer_jax.cli.evaluate import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
