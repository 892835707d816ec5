"""`python -m timesformer_jax COMMAND [FLAGS]`: the `timesformer` command."""
import sys

from timesformer_jax.cli.main import main

sys.exit(main())
