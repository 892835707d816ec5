"""Forward-time resizing of the position and time embeddings, as the official TimeSformer forward does it.

The official model (and Hugging Face's port) resizes with PyTorch `F.interpolate(mode="nearest")` whenever a
clip has another patch grid or frame count than the checkpoint: on the 2-D patch grid with the cls position kept
apart, and on the frame axis. PyTorch's nearest rule takes source index `floor(i * scale)` with
`scale = n_in / n_out` computed in float32 (not the half-pixel rule of `jax.image.resize`), so we compute the
indices the same way and gather. Resampling for weight *conversion* (bilinear/bicubic) is a different operation
and lives with the converters.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def nearest_source_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index for each of `n_out` outputs under PyTorch's `mode="nearest"`: `floor(i * n_in / n_out)`.

    The product is taken in float32 as PyTorch's CPU kernel does, then clamped to `n_in - 1`.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"expected positive sizes, got n_in={n_in}, n_out={n_out}")
    if n_in == n_out:
        return np.arange(n_out)
    scale = np.float32(n_in) / np.float32(n_out)
    idx = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(idx, n_in - 1)


def resize_pos_embed(pos_embed: jnp.ndarray, grid_in: tuple[int, int], grid_out: tuple[int, int]) -> jnp.ndarray:
    """Nearest-resize a position embedding from one patch grid to another, cls entry kept apart.

    pos_embed: (1, 1 + Hi * Wi, D) with patches in row-major (h, w) order.
    Returns (1, 1 + Ho * Wo, D).
    """
    (hi, wi), (ho, wo) = grid_in, grid_out
    if (hi, wi) == (ho, wo):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    grid = patch_pos.reshape(hi, wi, -1)
    grid = grid[nearest_source_indices(hi, ho)][:, nearest_source_indices(wi, wo)]
    return jnp.concatenate([cls_pos, grid.reshape(1, ho * wo, -1)], axis=1)


def resize_time_embed(time_embed: jnp.ndarray, num_frames: int) -> jnp.ndarray:
    """Nearest-resize a time embedding `(1, T_in, D)` to `(1, num_frames, D)`."""
    if time_embed.shape[1] == num_frames:
        return time_embed
    return time_embed[:, nearest_source_indices(time_embed.shape[1], num_frames)]
