"""`python tools/aot_compile.py ARGS` is `timesformer compile ARGS` (timesformer_jax/cli/compile.py)."""
import sys

from timesformer_jax.cli.compile import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
