"""Command-line config flags (`--config FILE[:ARG]`, `--config.a.b=VALUE`) with one-line errors.

`--config` takes a file or the name of a shipped config (`--config k400_base:joint_space_time`); flags take
either spelling (`flag_spelling`).

ml_collections' flag parser reports an unknown field or a value it cannot convert as a traceback from inside
absl. `parse_flags` (given to `absl.app.run` as `flags_parser`) turns each into one `error:` line naming the
override, and for an unknown field the closest existing names. A tool with a `--workdir` flag run without
`--config` on a workdir that holds a run gets the run's stored config (`workdir_config.py`), overrides included.
"""
from __future__ import annotations

import difflib
import sys
from pathlib import Path

from absl import flags

from timesformer_jax.flag_spelling import respelled_for_absl
from timesformer_jax.train.config import config_path, flat_fields, load_config_file
from timesformer_jax.train.run_record import CONFIG_FILE

_PREFIX = "--config."


def _flag_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _config_file(argv: list[str]) -> str | None:
    return _flag_value(argv, "config")


def with_stored_config(argv: list[str]) -> list[str]:
    """`argv` with `--config` naming the stored config of `--workdir` when no `--config` is given and the workdir
    holds one; else `argv` unchanged."""
    workdir = _flag_value(argv, "workdir")
    if _config_file(argv) is not None or workdir is None or not (Path(workdir) / CONFIG_FILE).is_file():
        return argv
    stored = Path(__file__).with_name("workdir_config.py")
    return [argv[0], f"--config={stored}:{Path(workdir).absolute()}", *argv[1:]]


def with_shipped_config(argv: list[str]) -> list[str]:
    """`argv` with `--config NAME[:ARG]` naming a shipped config (`timesformer train --config k400_base`) written
    as that config's path; a `--config` naming neither a file nor a shipped config is one `error:` line."""
    spec = _config_file(argv)
    if spec is None:
        return argv
    name, sep, arg = spec.partition(":")
    if Path(name).is_file():
        return argv
    try:
        resolved = f"{config_path(name)}{sep}{arg}"
    except FileNotFoundError as e:
        print(f"error: --config: {e}", file=sys.stderr)
        sys.exit(1)
    out = list(argv)
    for i, item in enumerate(out):
        if item.startswith("--config="):
            out[i] = f"--config={resolved}"
        elif item == "--config" and i + 1 < len(out):
            out[i + 1] = resolved
    return out


def _known_names(config) -> set[str]:
    """Every dotted field name of `config`, sections included ("optimizer", "optimizer.args", ...)."""
    names = set()
    for name in flat_fields(config):
        parts = name.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return names


def override_problems(argv: list[str]) -> list[str]:
    """One phrase per `--config.NAME=...` of `argv` naming no field of the config file (with the closest
    names); empty when all exist or the config file cannot be read."""
    spec = _config_file(argv)
    if spec is None:
        return []
    path, _, arg = spec.partition(":")
    try:
        known = _known_names(load_config_file(path, arg or None))
    except Exception:  # the flag parser reports an unreadable config file itself
        return []
    problems = []
    for item in argv:
        if not item.startswith(_PREFIX):
            continue
        name = item[len(_PREFIX):].split("=", 1)[0]
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(f'config.{c}' for c in close)}?" if close else ""
        problems.append(f"{item.split('=', 1)[0]}: config {spec} has no field {name!r}{hint}")
    return problems


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with flag and config override mistakes as one `error:` line and exit status 1."""
    argv = respelled_for_absl(argv)
    if "workdir" in flags.FLAGS and "config" in flags.FLAGS:
        argv = with_stored_config(argv)
    if "config" in flags.FLAGS:
        argv = with_shipped_config(argv)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:  # a value absl cannot convert, a missing required flag, an unknown flag
        print(f"error: {e} (--help lists the flags)", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # ml_collections' AttributeError / KeyError / TypeError / ValueError
        problems = override_problems(argv)
        if not problems:
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0].strip("'\"")
            problems = [f"cannot apply the config flags: {type(e).__name__}: {first_line}"]
        print("error: " + "; ".join(problems), file=sys.stderr)
        sys.exit(1)
