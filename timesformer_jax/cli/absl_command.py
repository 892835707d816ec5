"""Running an absl-flags command from `timesformer CMD ARGS` (or its `tools/` script)."""
from __future__ import annotations

import sys
from typing import Callable


def run_absl(main: Callable, doc: str, command: str, argv: list[str] | None, flags_parser: Callable) -> None:
    """`absl.app.run(main)` on `timesformer COMMAND` + argv (default: the process's arguments after the
    program), `doc` as the help text; exits with main's status."""
    from absl import app

    argv = sys.argv[1:] if argv is None else list(argv)
    main_module = sys.modules.get("__main__")
    if main_module is not None:
        main_module.__doc__ = doc  # absl's --help prints the __main__ module's docstring
    def quiet_main(args):
        from absl import logging

        if "--verbosity" not in " ".join(argv) and "-v" not in argv:
            logging.set_verbosity(logging.WARNING)  # INFO lines of TFDS and of JAX's backend probing
        return main(args)

    app.run(quiet_main, argv=[f"timesformer {command}", *argv], flags_parser=flags_parser)
