"""Resampling of position and time embeddings when converting weights to another patch grid or frame count.

A ViT position embedding is a 2-D grid of vectors plus one cls entry. The official TimeSformer resizes it as a
1-D sequence with nearest neighbour at load time; we resample the patch grid in 2-D and keep the cls entry apart,
as the ViT authors do when fine-tuning at a higher resolution.

Convention: corner-aligned sampling (`align_corners=True` in PyTorch terms; the alignment of
`scipy.ndimage.zoom`, which the Google ViT code uses for this job). The first and last grid positions map onto
the first and last source positions, so the same size is exactly the identity and a linear ramp stays a linear
ramp all the way to the border. `bicubic` is the Keys cubic convolution with a = -0.75 and clamped borders,
PyTorch's `mode="bicubic"`. Downsampling is plain interpolation (no anti-aliasing), again as in the ViT code.

Everything here is NumPy in float64: conversion runs once, on the host.
"""
from __future__ import annotations

import numpy as np

METHODS = ("bilinear", "bicubic")
_CUBIC_A = -0.75


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Keys cubic convolution weights (n, 4) for the neighbours at offsets -1, 0, 1, 2 of fraction `t` (n,)."""
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def interpolation_matrix(n_in: int, n_out: int, method: str = "bilinear") -> np.ndarray:
    """(n_out, n_in) matrix M with `resampled = M @ samples`, corner-aligned (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown resampling method {method!r}; expected one of {METHODS}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"expected positive sizes, got n_in={n_in}, n_out={n_out}")
    if n_in == n_out:
        return np.eye(n_out)
    position = np.arange(n_out) * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    base = np.floor(position).astype(np.int64)
    frac = position - base
    matrix = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if method == "bilinear":
        offsets, weights = (0, 1), np.stack([1 - frac, frac], axis=-1)
    else:
        offsets, weights = (-1, 0, 1, 2), _cubic_weights(frac)
    for k, offset in enumerate(offsets):
        np.add.at(matrix, (rows, np.clip(base + offset, 0, n_in - 1)), weights[:, k])
    return matrix


def resample_grid(grid: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """Resample a grid of vectors (H, W, D) to (size[0], size[1], D), separably along H then W."""
    if grid.ndim != 3:
        raise ValueError(f"expected a grid (H, W, D), got shape {grid.shape}")
    rows = interpolation_matrix(grid.shape[0], size[0], method)
    cols = interpolation_matrix(grid.shape[1], size[1], method)
    return np.einsum("oh,hwd,pw->opd", rows, grid.astype(np.float64), cols)


def resample_pos_embed(
    pos_embed: np.ndarray, grid_in: tuple[int, int], grid_out: tuple[int, int], method: str = "bilinear"
) -> np.ndarray:
    """(1, 1 + Hi * Wi, D) -> (1, 1 + Ho * Wo, D): the patch grid (row-major) resampled in 2-D, cls kept as is."""
    (hi, wi), (ho, wo) = grid_in, grid_out
    if pos_embed.ndim != 3 or pos_embed.shape[:2] != (1, 1 + hi * wi):
        raise ValueError(
            f"expected a position embedding (1, 1 + {hi}*{wi}, D) for a {hi}x{wi} patch grid, got {pos_embed.shape}"
        )
    patches = resample_grid(pos_embed[0, 1:].reshape(hi, wi, -1), (ho, wo), method)
    out = np.concatenate([pos_embed[0, :1].astype(np.float64), patches.reshape(ho * wo, -1)], axis=0)
    return out[None].astype(pos_embed.dtype)


def resample_time_embed(time_embed: np.ndarray, num_frames: int, method: str = "bilinear") -> np.ndarray:
    """(1, T_in, D) -> (1, num_frames, D) along the frame axis (`bilinear` means linear here)."""
    if time_embed.ndim != 3 or time_embed.shape[0] != 1:
        raise ValueError(f"expected a time embedding (1, T, D), got {time_embed.shape}")
    matrix = interpolation_matrix(time_embed.shape[1], num_frames, method)
    return (matrix @ time_embed[0].astype(np.float64))[None].astype(time_embed.dtype)
