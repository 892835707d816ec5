"""`python tools/build_dataset.py ARGS` is `timesformer build-dataset ARGS` (timesformer_jax/cli/build_dataset.py)."""
import sys

from timesformer_jax.cli.build_dataset import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
