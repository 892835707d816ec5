"""Image ViTs built by their own libraries (timm, transformers) with random weights, and a Google-layout `.npz`.

Every parameter is randomised (LayerNorm scales around 1, everything else N(0, 0.2^2)): default inits zero the
biases and would hide mapping bugs. The `.npz` is written in the Google layout from random arrays and loaded into
a timm ViT by timm's own `.npz` loader, so timm, not our reader, defines what that layout means.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import timm
import torch
from transformers import ViTConfig, ViTForImageClassification, ViTModel

# Head dim 16, not 64, so a converter that guesses the head count instead of reading it fails.
WIDTH, DEPTH, HEADS, MLP, PATCH, IMAGE = 48, 2, 3, 96, 8, 32
GRID = IMAGE // PATCH


@torch.no_grad()
def randomise_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=generator) * 0.2
        is_norm_scale = name.endswith("weight") and p.ndim == 1 and ("norm" in name)
        p.copy_(1.0 + noise if is_norm_scale else noise)
    return model.eval()


def timm_vit(num_classes: int = 10, seed: int = 0, randomise: bool = True, **kwargs) -> torch.nn.Module:
    """A timm ViT of our test size; `kwargs` override its arguments (e.g. `embed_dim`, `init_values`)."""
    arguments = dict(
        img_size=IMAGE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP / WIDTH
    )
    arguments.update(kwargs)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes, **arguments)
    return randomise_(model, seed) if randomise else model.eval()


def hf_vit(with_head: bool, seed: int = 0, num_labels: int = 10):
    config = ViTConfig(
        image_size=IMAGE,
        patch_size=PATCH,
        hidden_size=WIDTH,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        intermediate_size=MLP,
        num_labels=num_labels,
    )
    model = ViTForImageClassification(config) if with_head else ViTModel(config)
    return randomise_(model, seed)


def write_google_npz(path: Path, *, layout: str, num_classes: int, pre_logits: bool, seed: int = 0) -> None:
    """Random arrays in a Google ViT `.npz` layout: `original` (ViT / AugReg releases) or `big_vision_scanned`."""
    rng = np.random.default_rng(seed)

    def rand(*shape, around=0.0):
        return (around + 0.2 * rng.standard_normal(shape)).astype(np.float32)

    hd = WIDTH // HEADS
    arrays = {
        "embedding/kernel": rand(PATCH, PATCH, 3, WIDTH),
        "embedding/bias": rand(WIDTH),
        "cls": rand(1, 1, WIDTH),
        "Transformer/encoder_norm/scale": rand(WIDTH, around=1.0),
        "Transformer/encoder_norm/bias": rand(WIDTH),
        "head/kernel": rand(WIDTH, num_classes),
        "head/bias": rand(num_classes),
    }
    if pre_logits:
        arrays["pre_logits/kernel"] = rand(WIDTH, WIDTH)
        arrays["pre_logits/bias"] = rand(WIDTH)
    big_vision = layout == "big_vision_scanned"
    attn, ln2, mlp = ("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0") if big_vision else (
        "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")
    block = {
        "LayerNorm_0/scale": lambda: rand(WIDTH, around=1.0),
        "LayerNorm_0/bias": lambda: rand(WIDTH),
        **{f"{attn}/{n}/kernel": (lambda: rand(WIDTH, HEADS, hd)) for n in ("query", "key", "value")},
        **{f"{attn}/{n}/bias": (lambda: rand(HEADS, hd)) for n in ("query", "key", "value")},
        f"{attn}/out/kernel": lambda: rand(HEADS, hd, WIDTH),
        f"{attn}/out/bias": lambda: rand(WIDTH),
        f"{ln2}/scale": lambda: rand(WIDTH, around=1.0),
        f"{ln2}/bias": lambda: rand(WIDTH),
        f"{mlp}/Dense_0/kernel": lambda: rand(WIDTH, MLP),
        f"{mlp}/Dense_0/bias": lambda: rand(MLP),
        f"{mlp}/Dense_1/kernel": lambda: rand(MLP, WIDTH),
        f"{mlp}/Dense_1/bias": lambda: rand(WIDTH),
    }
    if big_vision:
        arrays["pos_embedding"] = rand(1, GRID * GRID, WIDTH)  # big_vision: no position for the cls token
        for name, make in block.items():
            arrays[f"Transformer/encoderblock/{name}"] = np.stack([make() for _ in range(DEPTH)])
    else:
        arrays["Transformer/posembed_input/pos_embedding"] = rand(1, 1 + GRID * GRID, WIDTH)
        for i in range(DEPTH):
            arrays.update({f"Transformer/encoderblock_{i}/{name}": make() for name, make in block.items()})
    np.savez(path, **arrays)


def timm_vit_from_npz(path: Path, num_classes: int, **kwargs) -> torch.nn.Module:
    """A timm ViT loaded from a Google `.npz` by timm's own loader."""
    model = timm_vit(num_classes=num_classes, randomise=False, **kwargs)
    model.load_pretrained(str(path))
    return model.eval()


def image_batch(batch: int = 2, seed: int = 1) -> np.ndarray:
    """(B, H, W, C) float32."""
    return np.random.default_rng(seed).normal(size=(batch, IMAGE, IMAGE, 3)).astype(np.float32)


def static_clip(images: np.ndarray, frames: int) -> np.ndarray:
    """(B, H, W, C) -> (B, T, H, W, C): the same image in every frame."""
    return np.repeat(images[:, None], frames, axis=1)


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
