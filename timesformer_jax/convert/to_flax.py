"""A complete official-named state dict (facebookresearch/TimeSformer names, PyTorch layout) -> Flax parameters.

The official names are the lingua franca of the converters: every reader produces them (`readers/`), then
`state_to_params` maps them onto the parameter tree of a `TimeSformer`. Our module names are the
official ones, so the mapping is mechanical:

    patch_embed.proj.weight (D, C, p, p)   -> patch_embed/kernel (p, p, C, D)
    blocks.{i}.{...}.weight (out, in)      -> blocks_{i}/{...}/kernel, transposed and reshaped per head
    blocks.{i}.{...norm...}.weight (D,)    -> .../scale
    cls_token, pos_embed, time_embed       -> unchanged
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import jax
import numpy as np

from timesformer_jax.model import TimeSformer
from timesformer_jax.model.params import TreeMismatch, abstract_params


def param_key(path: tuple[str, ...]) -> str:
    """Official state-dict key of one of our parameters, e.g. ('blocks_0', 'attn', 'qkv', 'kernel') ->
    'blocks.0.attn.qkv.weight'."""
    *modules, leaf = path
    modules = [re.sub(r"^blocks_(\d+)$", r"blocks.\1", m) for m in modules]
    if modules == ["patch_embed"]:
        modules = ["patch_embed", "proj"]
    if leaf in ("kernel", "scale"):
        leaf = "weight"
    return ".".join(modules + [leaf])


def torch_layout(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the official tensor has for our parameter at `path` with `shape`."""
    leaf = path[-1]
    if path[0] == "patch_embed" and leaf == "kernel":  # conv (p, p, C, D) <- (D, C, p, p)
        return (shape[3], shape[2], shape[0], shape[1])
    if leaf == "kernel" and path[-2] == "qkv":  # (D, 3, heads, hd) <- Linear (3D, D)
        return (math.prod(shape[1:]), shape[0])
    if leaf == "kernel":  # (..., out) <- Linear (out, in)
        return (shape[-1], math.prod(shape[:-1]))
    if leaf == "bias":
        return (math.prod(shape),)
    return tuple(shape)


def _to_flax(path: tuple[str, ...], tensor: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if path[0] == "patch_embed" and path[-1] == "kernel":
        return np.transpose(tensor, (2, 3, 1, 0))
    if path[-1] == "kernel":
        return np.ascontiguousarray(tensor.T).reshape(shape)
    return tensor.reshape(shape)


def state_to_params(state: Mapping[str, np.ndarray], module: TimeSformer) -> dict:
    """Map an official-named state dict onto `module`'s parameter tree (float32 NumPy arrays).

    Raises ValueError listing every missing, unexpected and mis-shaped key when the two do not match.
    """
    target = abstract_params(module)
    flat_target = {tuple(k.key for k in path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(target)}
    expected = {param_key(path): torch_layout(path, leaf.shape) for path, leaf in flat_target.items()}
    mismatch = TreeMismatch.compare({k: np.shape(v) for k, v in state.items()}, expected)
    mismatch.raise_if_any(f"checkpoint does not match TimeSformer({_describe(module)}):")
    flat_params = {
        path: _to_flax(path, np.asarray(state[param_key(path)]), leaf.shape).astype(leaf.dtype)
        for path, leaf in flat_target.items()
    }
    params: dict = {}
    for path, value in flat_params.items():
        node = params
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return params


def _describe(module: TimeSformer) -> str:
    fields = ("attention_type", "hidden_size", "depth", "num_heads", "patch_size", "num_frames", "num_classes")
    return ", ".join(f"{f}={getattr(module, f)!r}" for f in fields)
