"""`python tools/visualize_attention.py ARGS` is `timesformer attention ARGS` (timesformer_jax/cli/attention.py)."""
import sys

from timesformer_jax.cli.attention import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
