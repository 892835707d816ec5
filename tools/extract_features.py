"""`python tools/extract_features.py ARGS` is `timesformer features ARGS` (timesformer_jax/cli/features.py)."""
import sys

from timesformer_jax.cli.features import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
