"""Google ViT `.npz` checkpoints -> a timm/official-named state dict in PyTorch layout.

Layouts read (the ones timm's own `.npz` loader reads for plain ViTs):

* original ViT release and AugReg (`gs://vit_models/imagenet21k/`, `.../augreg/`): `embedding/kernel (p, p, C, D)`,
  `cls`, `Transformer/posembed_input/pos_embedding`, `Transformer/encoderblock_{i}/` with `LayerNorm_0`,
  `MultiHeadDotProductAttention_1/{query,key,value,out}`, `LayerNorm_2`, `MlpBlock_3/Dense_{0,1}`, then
  `Transformer/encoder_norm`, `head` and, in the ImageNet-21k releases, a `pre_logits` dense layer;
* big_vision: top-level `pos_embedding` (no cls position: a zero row is added for it), blocks with `MultiHeadDotProductAttention_0`, `LayerNorm_1`,
  `MlpBlock_0`, either one `encoderblock_{i}` per block or one scanned `encoderblock` whose tensors carry the
  block index as a leading axis;
* any of these under a `opt/target/` or `params/` prefix.

Flax stores dense kernels (in, out) and attention kernels (D, heads, head_dim) / (heads, head_dim, D); PyTorch
Linear weights are (out, in) with q, k, v concatenated in one `qkv` layer. The output names are the ones
`to_flax.state_to_params` consumes (the timm ViT names, which the official TimeSformer kept).
"""
from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path

import numpy as np

_PREFIXES = ("opt/target/", "params/img/", "params/", "")


def read_google_npz(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a Google ViT `.npz`, renamed and transposed into a timm-layout state dict."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise ValueError(f"cannot read {path} as a .npz archive (truncated or not an npz?): {e}") from e
    prefix = next((p for p in _PREFIXES if f"{p}embedding/kernel" in arrays), None)
    if prefix is None:
        raise ValueError(
            f"{path} is not a Google ViT checkpoint: no 'embedding/kernel' (patch embedding) among its "
            f"{len(arrays)} arrays, e.g. {sorted(arrays)[:8]}"
        )
    arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    try:
        return google_arrays_to_state(arrays)
    except KeyError as e:
        raise ValueError(f"{path} is not a complete Google ViT checkpoint: no array {e.args[0]!r}") from e


def _blocks(arrays: dict[str, np.ndarray]) -> tuple[list[dict[str, np.ndarray]], bool]:
    """Per-block arrays keyed by the name inside the block, and whether the layout is big_vision's."""
    scanned = {k[len("Transformer/encoderblock/") :]: v for k, v in arrays.items() if k.startswith("Transformer/encoderblock/")}
    if scanned:
        depth = next(iter(scanned.values())).shape[0]
        return [{k: v[i] for k, v in scanned.items()} for i in range(depth)], True
    blocks: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        if m := re.fullmatch(r"Transformer/encoderblock_(\d+)/(.+)", key):
            blocks.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if sorted(blocks) != list(range(len(blocks))):
        raise ValueError(f"encoder blocks are not numbered 0..N-1: found {sorted(blocks)}")
    first = blocks.get(0, {})
    big_vision = "pos_embedding" in arrays or "MultiHeadDotProductAttention_0/query/kernel" in first
    return [blocks[i] for i in range(len(blocks))], big_vision


def _linear(kernel: np.ndarray) -> np.ndarray:
    """Flax Dense kernel (in, out) -> torch Linear weight (out, in)."""
    return kernel.T


def google_arrays_to_state(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Google-named ViT arrays (prefix removed) -> timm-named torch-layout tensors.

    Arrays this mapping does not know are passed through under their Google names, so that the caller reports
    them (a hybrid ResNet stem, a MAP head) instead of silently dropping them.
    """
    arrays = dict(arrays)
    take = arrays.pop
    state: dict[str, np.ndarray] = {}
    if "cls" not in arrays:
        raise ValueError(
            "this ViT has no cls token (a global-average-pooling or MAP-head model); TimeSformer classifies from "
            "the cls token, so it cannot start from this checkpoint"
        )
    state["patch_embed.proj.weight"] = take("embedding/kernel").transpose(3, 2, 0, 1)  # (p,p,C,D) -> (D,C,p,p)
    state["patch_embed.proj.bias"] = take("embedding/bias")
    state["cls_token"] = take("cls")
    pos = take("pos_embedding", None)
    pos = take("Transformer/posembed_input/pos_embedding") if pos is None else pos
    pos = pos if pos.ndim == 3 else pos[None]
    if math.isqrt(pos.shape[1]) ** 2 == pos.shape[1]:
        # big_vision adds no position to the cls token: a zero row for it computes the same function.
        pos = np.concatenate([np.zeros_like(pos[:, :1]), pos], axis=1)
    state["pos_embed"] = pos

    blocks, big_vision = _blocks(arrays)
    for key in [k for k in arrays if k.startswith("Transformer/encoderblock")]:
        del arrays[key]
    attn, ln2, mlp = ("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0") if big_vision else (
        "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")
    for i, block in enumerate(blocks):
        block = dict(block)
        get = block.pop
        out = f"blocks.{i}."
        state[out + "norm1.weight"] = get("LayerNorm_0/scale")
        state[out + "norm1.bias"] = get("LayerNorm_0/bias")
        width = state[out + "norm1.weight"].shape[0]
        # query/key/value kernels (D, heads, hd) -> rows of the (3D, D) qkv weight, q then k then v.
        qkv = [get(f"{attn}/{n}/kernel").reshape(width, -1) for n in ("query", "key", "value")]
        state[out + "attn.qkv.weight"] = _linear(np.concatenate(qkv, axis=1))
        qkv_bias = [get(f"{attn}/{n}/bias", None) for n in ("query", "key", "value")]
        if all(b is not None for b in qkv_bias):
            state[out + "attn.qkv.bias"] = np.concatenate([b.reshape(-1) for b in qkv_bias])
        out_kernel = get(f"{attn}/out/kernel")  # (heads, hd, D)
        state[out + "attn.proj.weight"] = _linear(out_kernel.reshape(-1, out_kernel.shape[-1]))
        state[out + "attn.proj.bias"] = get(f"{attn}/out/bias")
        state[out + "norm2.weight"] = get(f"{ln2}/scale")
        state[out + "norm2.bias"] = get(f"{ln2}/bias")
        for r in range(2):
            state[out + f"mlp.fc{r + 1}.weight"] = _linear(get(f"{mlp}/Dense_{r}/kernel"))
            state[out + f"mlp.fc{r + 1}.bias"] = get(f"{mlp}/Dense_{r}/bias")
        state.update({f"Transformer/encoderblock_{i}/{k}": v for k, v in block.items()})  # unknown: reported later

    renames = {
        "Transformer/encoder_norm/scale": "norm.weight",
        "Transformer/encoder_norm/bias": "norm.bias",
        "pre_logits/kernel": "pre_logits.fc.weight",
        "pre_logits/bias": "pre_logits.fc.bias",
        "head/kernel": "head.weight",
        "head/bias": "head.bias",
    }
    for google, timm in renames.items():
        if google in arrays:
            value = take(google)
            state[timm] = _linear(value) if google.endswith("kernel") else value
    state.update(arrays)
    return state
