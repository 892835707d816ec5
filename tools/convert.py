"""`python tools/convert.py ARGS` is `timesformer convert ARGS` (timesformer_jax/cli/convert.py)."""
import sys

from timesformer_jax.cli.convert import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
