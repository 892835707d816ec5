"""One flag style for every command: `--snake_case` (`--top_k`, `--manual_dir`, `--config.model.num_heads`), with
the dashed spelling accepted too (`--top-k`, `--manual-dir`, `--config.model.num-heads`), and a "did you mean"
for a flag no command defines.

`respelled(argv, known)` rewrites each flag written in the other spelling to the defined one before a parser
sees it; `ArgumentParser` (argparse) and `absl_flags_parser` (absl, for `app.run(flags_parser=...)`) apply it.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from typing import Iterable, Sequence


def _canonical(name: str) -> str:
    return name.replace("-", "_")


def respelled(args: Sequence[str], known: Iterable[str]) -> list[str]:
    """`args` (flags and values, no program name) with every `--name[=value]` whose name is not in `known` but
    whose snake_case or dashed spelling is, written as the known name. Config overrides (`--config.a-b.c-d=1`)
    become snake_case; absl's boolean negations (`--no-name`, `--no_name`) become `--noname`. Everything after a
    bare `--` is left alone."""
    known = set(known)
    by_canonical = {_canonical(name): name for name in known}
    out = []
    for position, arg in enumerate(args):
        if arg == "--":
            return out + list(args[position:])
        if not arg.startswith("--") or len(arg) == 2:
            out.append(arg)
            continue
        name, sep, value = arg[2:].partition("=")
        if name not in known:
            if name.startswith("config.") and "config" in known:
                name = _canonical(name)
            elif _canonical(name) in by_canonical:
                name = by_canonical[_canonical(name)]
            elif name.startswith("no") and _canonical(name[2:].lstrip("-_")) in by_canonical:
                name = "no" + by_canonical[_canonical(name[2:].lstrip("-_"))]
        out.append(f"--{name}{sep}{value}")
    return out


def suggestion(name: str, known: Iterable[str]) -> str:
    """' (did you mean --x?)' for the known flag closest to `name` (either spelling), or ''."""
    canonical = {_canonical(k): k for k in known}
    close = difflib.get_close_matches(_canonical(name.lstrip("-").split("=", 1)[0]), sorted(canonical), n=2,
                                      cutoff=0.6)
    return f" (did you mean {' or '.join('--' + canonical[c] for c in close)}?)" if close else ""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the shared flag style: either spelling of a defined flag, and unknown flags reported one
    per line with the closest defined flag. Abbreviations are off (a prefix never stands for a flag)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def _long_flags(self) -> list[str]:
        return [option[2:] for option in self._option_string_actions if option.startswith("--")]

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(respelled(args, self._long_flags()), namespace)

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            unknown = [arg for arg in extra if arg.startswith("-")]
            if unknown:
                self.error("; ".join(f"unknown flag {arg.split('=', 1)[0]}{suggestion(arg, self._long_flags())}"
                                     for arg in unknown))
            self.error(f"unexpected arguments: {' '.join(extra)}")
        return parsed


def absl_flags_parser(argv: list[str]) -> list[str]:
    """absl's flag parsing (`app.run(main, flags_parser=absl_flags_parser)`) with either spelling accepted; absl
    itself names the closest flag for an unknown one. Errors are one `error:` line and exit status 1."""
    from absl import flags

    try:
        return flags.FLAGS(respelled_for_absl(argv))
    except flags.Error as e:
        print(f"error: {e} (--help lists the flags)", file=sys.stderr)
        sys.exit(1)


def respelled_for_absl(argv: list[str]) -> list[str]:
    """`argv` (program name first) respelled against absl's registered flags."""
    from absl import flags

    return [argv[0], *respelled(argv[1:], list(flags.FLAGS))]
