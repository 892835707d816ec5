"""A model's parameter tree without allocating it, and the one comparison of two parameter trees.

`abstract_variables` is what checkpoint conversion (the target tree), training (shardings from the boxed logical
names) and the tools (parameter counts) all trace; `TreeMismatch` is how any of them reports that a tree on disk
does not fit the model: every missing, unexpected and mis-shaped entry, by name.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from timesformer_jax.model.timesformer import TimeSformer


def abstract_variables(module: TimeSformer, video_shape: tuple[int, ...] | None = None) -> dict:
    """`module.init`'s variables as `jax.ShapeDtypeStruct`s, still boxed with their logical axis names
    (`nn.Partitioned`). `video_shape` (B, T, H, W, C) defaults to one clip of the configured size."""
    video = jax.ShapeDtypeStruct(video_shape or module.clip_shape(), jnp.float32)
    return jax.eval_shape(module.init, jax.random.key(0), video)


def abstract_params(module: TimeSformer, video_shape: tuple[int, ...] | None = None) -> dict:
    """Shapes/dtypes of `module`'s parameters (the unboxed `params` collection), without allocating them."""
    return nn.unbox(abstract_variables(module, video_shape))["params"]


def flat_shapes(tree) -> dict[str, tuple[int, ...]]:
    """{"['blocks_0']['attn']['qkv']['kernel']": shape, ...} for any tree of arrays or shape structs."""
    return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


@dataclasses.dataclass(frozen=True)
class TreeMismatch:
    """How a tree that was read (`got`) differs from the tree a model expects (`want`), both {name: shape}."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    misshaped: tuple[str, ...]

    @classmethod
    def compare(cls, got: Mapping[str, tuple], want: Mapping[str, tuple], ignore=()) -> "TreeMismatch":
        """Names in `ignore` (e.g. a classifier head that will be re-initialised) are never reported."""
        got = {k: tuple(v) for k, v in got.items() if k not in ignore}
        want = {k: tuple(v) for k, v in want.items() if k not in ignore}
        return cls(
            missing=tuple(f"{k} {want[k]}" for k in want if k not in got),
            unexpected=tuple(f"{k} {got[k]}" for k in got if k not in want),
            misshaped=tuple(f"{k}: got {got[k]}, expected {want[k]}" for k in want if k in got and got[k] != want[k]),
        )

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.misshaped)

    def describe(self, limit: int = 20) -> str:
        """One indented line per kind of problem, listing up to `limit` entries each."""
        lines = []
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("mis-shaped", self.misshaped)):
            if items:
                more = f", ... {len(items) - limit} more" if len(items) > limit else ""
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:limit]) + more)
        return "\n".join(lines)

    def raise_if_any(self, headline: str) -> None:
        """ValueError with `headline` and every problem, when there is any."""
        if self:
            raise ValueError(f"{headline}\n{self.describe()}")
