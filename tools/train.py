"""`python tools/train.py ARGS` is `timesformer train ARGS` (timesformer_jax/cli/train.py)."""
import sys

from timesformer_jax.cli.train import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
