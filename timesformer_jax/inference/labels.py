"""Class names for a model's outputs: a labels file, the checkpoint's own names, or a list shipped with the
package for the datasets of the official checkpoints (matched by class count).

Shipped lists (`labels/*.txt`, one name a line, a `#` line naming the source): Kinetics-400, Kinetics-700,
Something-Something v2 and UCF101, each in the class order its checkpoints use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from importlib import resources

SHIPPED = {
    "kinetics400": "Kinetics-400",
    "kinetics700": "Kinetics-700",
    "something_something_v2": "Something-Something v2",
    "ucf101": "UCF101",
}


def read_label_file(path: str | Path) -> list[str]:
    """Names from a text file, one per line in class order; blank lines and lines starting with '#' skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def shipped_labels(name: str) -> list[str]:
    """A shipped list by its name (a key of SHIPPED)."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped label list {name!r}; there are {sorted(SHIPPED)}")
    resource = resources.files("timesformer_jax.inference") / "labels" / f"{name}.txt"
    with resources.as_file(resource) as path:
        return read_label_file(path)


def shipped_for_class_count(num_classes: int) -> str | None:
    """The one shipped list with `num_classes` names, or None (none, or more than one, has that count)."""
    matches = [name for name in SHIPPED if len(shipped_labels(name)) == num_classes]
    return matches[0] if len(matches) == 1 else None


def resolve_labels(num_classes: int, own: Sequence[str] | None = None, labels_file: str | Path | None = None,
                   log: Callable[[str], None] = lambda message: None) -> list[str]:
    """Names for `num_classes` outputs: `labels_file` if given, else the checkpoint's `own` names, else the one
    shipped list of that size (said in `log`), else the indices as strings."""
    if labels_file is not None:
        names = read_label_file(labels_file)
        if len(names) != num_classes:
            raise ValueError(f"{labels_file} has {len(names)} names, but the model has {num_classes} classes")
        return names
    if own:
        if len(own) != num_classes:
            raise ValueError(f"the checkpoint names {len(own)} classes, but its head has {num_classes}")
        return list(own)
    shipped = shipped_for_class_count(num_classes)
    if shipped is not None:
        log(f"labels: the checkpoint names no classes; using the shipped {SHIPPED[shipped]} list "
            f"({num_classes} classes; --labels FILE to give others)")
        return shipped_labels(shipped)
    return [str(i) for i in range(num_classes)]
