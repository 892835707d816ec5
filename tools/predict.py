"""`python tools/predict.py ARGS` is `timesformer predict ARGS` (timesformer_jax/cli/predict.py)."""
import sys

from timesformer_jax.cli.predict import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
