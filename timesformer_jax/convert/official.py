"""Official TimeSformer state dicts (facebookresearch/TimeSformer names) <-> our Flax parameters.

The official names are the lingua franca of the converters: Hugging Face checkpoints are renamed into them
(`hf.py`), then `state_to_params` maps them onto the parameter tree of a `TimeSformer`. Our module names are the
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

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from timesformer_jax.model import TimeSformer

VIT_HEAD_DIM = 64  # ViT-B (768 = 12 x 64) and ViT-L (1024 = 16 x 64)


def unwrap_official_checkpoint(obj) -> dict[str, np.ndarray]:
    """The model state dict from a loaded official `.pyth` (dict with `model_state`, keys prefixed `model.`)
    or from a bare state dict; a `module.` prefix left by DistributedDataParallel is dropped too."""
    if isinstance(obj, Mapping) and "model_state" in obj:
        obj = obj["model_state"]
    elif isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise ValueError(
            "expected an official TimeSformer checkpoint: a dict with 'model_state' mapping names to tensors, "
            f"or such a state dict; got {type(obj).__name__}"
            + (f" with keys {sorted(obj)[:10]}" if isinstance(obj, Mapping) else "")
        )
    state = {}
    for key, value in obj.items():
        for prefix in ("module.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        state[key] = value
    return state


def infer_config(state: Mapping[str, np.ndarray], num_heads: int | None = None) -> dict:
    """TimeSformer fields implied by the tensors of an official-named state dict.

    The head count is in no tensor: `num_heads` if given, else the ViT convention of 64 dimensions per head.
    """
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight"):
        if key not in state:
            raise ValueError(f"not a ViT or TimeSformer checkpoint: no '{key}' among keys {sorted(state)[:12]} ...")
    width = state["cls_token"].shape[-1]
    _, in_ch, patch, patch_w = state["patch_embed.proj.weight"].shape
    if patch != patch_w:
        raise ValueError(f"patch_embed.proj.weight has a {patch}x{patch_w} patch; only square patches are supported")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    if not blocks:
        raise ValueError("not a ViT or TimeSformer checkpoint: no 'blocks.N.*' tensors")
    num_patches = state["pos_embed"].shape[1] - 1
    grid = math.isqrt(num_patches)
    if grid * grid != num_patches:
        raise ValueError(
            f"pos_embed has {num_patches} patch positions, not a square grid; pass image_size=(H, W) explicitly"
        )
    if num_heads is None:
        if width % VIT_HEAD_DIM:
            raise ValueError(
                f"cannot infer the head count: width {width} is not a multiple of {VIT_HEAD_DIM} (the ViT head "
                "size) and the checkpoint holds no config; pass num_heads=... (tools/convert.py: --num-heads)"
            )
        num_heads = width // VIT_HEAD_DIM
    if "blocks.0.local_attn.qkv.weight" in state:
        attention_type = "sparse_local_global"
    elif "blocks.0.width_attn.qkv.weight" in state:
        attention_type = "axial"
    elif "blocks.0.temporal_attn.qkv.weight" in state:
        attention_type = "divided_space_time"
    elif "time_embed" in state:
        attention_type = "joint_space_time"
    else:
        attention_type = "space_only"
    config = dict(
        attention_type=attention_type,
        hidden_size=width,
        patch_size=patch,
        in_channels=in_ch,
        depth=max(blocks) + 1,
        num_heads=num_heads,
        mlp_dim=state["blocks.0.mlp.fc1.weight"].shape[0] if "blocks.0.mlp.fc1.weight" in state else 4 * width,
        image_size=grid * patch,
        num_classes=state["head.weight"].shape[0] if "head.weight" in state else 0,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
    )
    if "time_embed" in state:
        config["num_frames"] = state["time_embed"].shape[1]
    return config


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


def abstract_params(module: TimeSformer) -> dict:
    """Shapes/dtypes of `module`'s parameters, without allocating them."""
    video = jax.ShapeDtypeStruct(module.clip_shape(), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), video)
    return nn.unbox(variables["params"])


def state_to_params(state: Mapping[str, np.ndarray], module: TimeSformer) -> dict:
    """Map an official-named state dict onto `module`'s parameter tree (float32 NumPy arrays).

    Raises ValueError listing every missing, unexpected and mis-shaped key when the two do not match.
    """
    target = abstract_params(module)
    flat_target = {tuple(k.key for k in path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(target)}
    missing, misshaped, used = [], [], set()
    flat_params = {}
    for path, leaf in flat_target.items():
        key = param_key(path)
        if key not in state:
            missing.append(key)
            continue
        used.add(key)
        tensor = np.asarray(state[key])
        expected = torch_layout(path, leaf.shape)
        if tuple(tensor.shape) != expected:
            misshaped.append(f"{key}: got {tuple(tensor.shape)}, expected {expected}")
            continue
        flat_params[path] = _to_flax(path, tensor, leaf.shape).astype(leaf.dtype)
    unexpected = sorted(set(state) - used)
    if missing or unexpected or misshaped:
        lines = [f"checkpoint does not match TimeSformer({_describe(module)}):"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys))
        raise ValueError("\n".join(lines))
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
