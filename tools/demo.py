"""`python tools/demo.py ARGS` is `timesformer demo ARGS` (timesformer_jax/cli/demo.py)."""
import sys

from timesformer_jax.cli.demo import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
