"""`python tools/export.py ARGS` is `timesformer export ARGS` (timesformer_jax/cli/export.py)."""
import sys

from timesformer_jax.cli.export import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
