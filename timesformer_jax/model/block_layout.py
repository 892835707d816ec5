"""The two layouts of the blocks' parameters, and of the intermediates they sow.

    unrolled   {"blocks_0": {...}, "blocks_1": {...}, ...}        TimeSformer(scan_blocks=False); what every
                                                                  converted checkpoint and reader holds
    scanned    {"blocks": {...}}, each leaf with a leading (depth,) axis   TimeSformer(scan_blocks=True)

Conversions happen at the boundaries: checkpoints are converted and written unrolled (`convert/`), a model is
given parameters in its own layout (`to_layout` in `load_pretrained` and `config.init_checkpoint`), and the
tools that read per-block outputs take block i from either layout (`block_outputs`). A training workdir stores
its run's layout, recorded as `model.scan_blocks` in its `config.json`.
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

SCANNED_KEY = "blocks"
_UNROLLED_KEY = re.compile(r"blocks_(\d+)")


def is_scanned(tree) -> bool:
    """Whether `tree` (parameters or intermediates) holds its blocks stacked under SCANNED_KEY."""
    return SCANNED_KEY in tree


def _unrolled_indices(tree) -> list[int]:
    indices = sorted(int(m.group(1)) for key in tree if (m := _UNROLLED_KEY.fullmatch(str(key))))
    if indices != list(range(len(indices))):
        raise ValueError(f"expected blocks_0 .. blocks_{len(indices) - 1}; got blocks {indices}")
    return indices


def _stack(*leaves):
    return np.stack(leaves) if all(isinstance(x, np.ndarray) for x in leaves) else jnp.stack(leaves)


def stack_blocks(tree: dict) -> dict:
    """Unrolled -> scanned: `blocks_{i}` stacked on a new leading axis under SCANNED_KEY (NumPy stays NumPy)."""
    indices = _unrolled_indices(tree)
    if not indices:
        raise ValueError("expected unrolled blocks (blocks_0, ...); found none")
    rest = {key: value for key, value in tree.items() if not _UNROLLED_KEY.fullmatch(str(key))}
    return {**rest, SCANNED_KEY: jax.tree.map(_stack, *(tree[f"blocks_{i}"] for i in indices))}


def unstack_blocks(tree: dict) -> dict:
    """Scanned -> unrolled: the leading axis of SCANNED_KEY's leaves split into `blocks_{i}`."""
    stacked = tree[SCANNED_KEY]
    depth = {leaf.shape[0] for leaf in jax.tree.leaves(stacked)}
    if len(depth) != 1:
        raise ValueError(f"expected every leaf under {SCANNED_KEY!r} to lead with the same depth; got {sorted(depth)}")
    rest = {key: value for key, value in tree.items() if key != SCANNED_KEY}
    return {**rest, **{f"blocks_{i}": jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(depth.pop())}}


def to_layout(tree: dict, scanned: bool) -> dict:
    """`tree` (parameters) in the scanned or unrolled layout, converting only when it is in the other one."""
    if scanned == is_scanned(tree):
        return tree
    return stack_blocks(tree) if scanned else unstack_blocks(tree)


def block_outputs(intermediates: dict, index: int) -> dict:
    """What block `index` sowed (`cls`, `tokens`, attention weights), from either layout."""
    if is_scanned(intermediates):
        return jax.tree.map(lambda x: x[index], intermediates[SCANNED_KEY])
    return intermediates[f"blocks_{index}"]
