"""The collectives of a compiled program, read from its HLO text: how many of each kind and the bytes they move.

Counted statically, once per op in the program text (an op inside a loop body counts once). The bytes of an op
are the size of its result array(s): for an all-gather the gathered array, for a reduce-scatter the shard, for
an all-reduce the reduced array. Async pairs (`all-gather-start` / `-done`) count once, at the start, as their
largest array (the start's tuple also holds the operand).
"""
from __future__ import annotations

import re

KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute", "collective-broadcast")

_BYTES_PER_ELEMENT = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
                      "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
                      "f8e4m3fn": 1, "f8e5m2": 1, "f8e4m3b11fnuz": 1, "f8e4m3fnuz": 1, "f8e5m2fnuz": 1}
_ARRAY = re.compile(r"\b(" + "|".join(_BYTES_PER_ELEMENT) + r")\[([\d,]*)\]")
# `%name = <result type> <op>(` with the op a collective, optionally async-started.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*?)\s(" + "|".join(KINDS) + r")(-start)?\(")


def _array_bytes(result_type: str) -> list[int]:
    sizes = []
    for dtype, dims in _ARRAY.findall(result_type):
        count = 1
        for d in filter(None, dims.split(",")):
            count *= int(d)
        sizes.append(int(count * _BYTES_PER_ELEMENT[dtype]))
    return sizes


def collectives(hlo_text: str) -> dict[str, dict[str, int]]:
    """{kind: {"count": ops, "bytes": result bytes summed over them}} for each kind present in `hlo_text`."""
    found: dict[str, dict[str, int]] = {}
    for line in hlo_text.splitlines():
        match = _INSTRUCTION.match(line)
        if not match:
            continue
        result_type, kind, is_start = match.groups()
        sizes = _array_bytes(result_type)
        moved = max(sizes, default=0) if is_start else sum(sizes)
        entry = found.setdefault(kind, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += moved
    return found
