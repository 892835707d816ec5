"""ImageNet ViT checkpoints -> TimeSformer, each format built by its own library with random weights.

With every new stage's output projection at zero and a zero time embedding, a divided or space-only TimeSformer
computes on a clip of T copies of one image exactly what the ViT computes on that image; the reference is the
source library's own forward pass. Joint attention is not invariant to repeating frames (the cls key appears
once, every patch key T times, which shifts the softmax), so it is compared on one-frame clips, where it is the
ViT exactly.
"""
import numpy as np
import pytest
import safetensors.torch
import torch

import timesformer_jax
from timesformer_jax.convert.conversion import convert_checkpoint
from timesformer_jax.model import SCHEMES
from torch_reference import relative_error
from vit_reference import (
    HEADS,
    hf_vit,
    image_batch,
    nchw,
    static_clip,
    timm_vit,
    timm_vit_from_npz,
    write_google_npz,
)

TOLERANCE = 1e-5
FRAMES = 4
EQUIVALENT_SCHEMES = ["divided_space_time", "joint_space_time", "space_only"]


def clip_output(path, source, frames=FRAMES, **overrides):
    module, params, report = convert_checkpoint(path, source, preset="timesformer_tiny", num_frames=frames, **overrides)
    model = timesformer_jax.PretrainedTimeSformer(module, params)
    return np.asarray(model(static_clip(image_batch(), frames))), report


@pytest.mark.parametrize("attention_type", EQUIVALENT_SCHEMES)
def test_timm_pth_static_clip_matches_vit_logits(tmp_path, attention_type):
    vit = timm_vit(num_classes=10)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    frames = 1 if attention_type == "joint_space_time" else FRAMES
    ours, report = clip_output(tmp_path / "vit.pth", "timm", frames, attention_type=attention_type, num_heads=HEADS)
    with torch.no_grad():
        reference = vit(nchw(image_batch())).numpy()
    err = relative_error(ours, reference)
    print(f"timm .pth, {attention_type}: relative error {err:.2e}")
    assert err <= TOLERANCE
    assert "head.weight" in report.mapped  # same class count: the ImageNet head is kept


def test_timm_legacy_format_pth(tmp_path):
    # The pre-1.6 torch format of timm's early files, e.g. jx_vit_base_p16_224-80ecf9dd.pth.
    vit = timm_vit(num_classes=10)
    torch.save(vit.state_dict(), tmp_path / "jx_vit.pth", _use_new_zipfile_serialization=False)
    ours, _ = clip_output(tmp_path / "jx_vit.pth", None, num_heads=HEADS)
    with torch.no_grad():
        reference = vit(nchw(image_batch())).numpy()
    err = relative_error(ours, reference)
    print(f"timm legacy-format .pth: relative error {err:.2e}")
    assert err <= TOLERANCE


def test_timm_safetensors_with_new_class_count(tmp_path):
    vit = timm_vit(num_classes=10)
    safetensors.torch.save_file(vit.state_dict(), tmp_path / "vit.safetensors")
    features, _ = clip_output(tmp_path / "vit.safetensors", None, num_classes=0, num_heads=HEADS)
    with torch.no_grad():
        reference = vit.forward_head(vit.forward_features(nchw(image_batch())), pre_logits=True).numpy()
    err = relative_error(features, reference)
    print(f"timm .safetensors features: relative error {err:.2e}")
    assert err <= TOLERANCE
    logits, report = clip_output(tmp_path / "vit.safetensors", "timm", num_classes=7, num_heads=HEADS)
    assert logits.shape == (2, 7)
    assert any(line.startswith("head (7 classes)") and "10 classes" in line for line in report.initialised)


@pytest.mark.parametrize("with_head", [False, True], ids=["ViTModel", "ViTForImageClassification"])
def test_hf_vit_directory(tmp_path, with_head):
    vit = hf_vit(with_head)
    vit.save_pretrained(tmp_path)
    pixels = nchw(image_batch())
    with torch.no_grad():
        if with_head:
            reference = vit(pixel_values=pixels).logits.numpy()
        else:
            reference = vit(pixel_values=pixels).last_hidden_state[:, 0].numpy()  # after the final LayerNorm
    # No num_heads given: an HF config stores it. Its LayerNorm epsilon (1e-12) is read too.
    ours, report = clip_output(tmp_path, "hf", num_classes=10 if with_head else 0)
    err = relative_error(ours, reference)
    print(f"HF {'ViTForImageClassification' if with_head else 'ViTModel'}: relative error {err:.2e}")
    assert err <= TOLERANCE
    if not with_head:
        assert any(line.startswith("pre_logits.fc.weight") for line in report.dropped)  # ViTModel's pooler


@pytest.mark.parametrize(
    "layout, pre_logits",
    [("original", True), ("original", False), ("big_vision_scanned", False)],
    ids=["in21k_with_pre_logits", "original", "big_vision_scanned"],
)
def test_google_npz_matches_timm_loader(tmp_path, layout, pre_logits):
    path = tmp_path / "vit.npz"
    num_classes = 13
    write_google_npz(path, layout=layout, num_classes=num_classes, pre_logits=pre_logits)
    vit = timm_vit_from_npz(path, num_classes, no_embed_class=layout == "big_vision_scanned")
    pixels = nchw(image_batch())
    with torch.no_grad():
        features = vit.forward_head(vit.forward_features(pixels), pre_logits=True).numpy()
        logits = vit(pixels).numpy()
    ours, _ = clip_output(path, "npz", num_classes=0, num_heads=HEADS)
    err = relative_error(ours, features)
    print(f"npz {layout}{' +pre_logits' if pre_logits else ''} features: relative error {err:.2e}")
    assert err <= TOLERANCE
    ours, report = clip_output(path, "npz", num_classes=num_classes, num_heads=HEADS)
    if pre_logits:  # the 21k head reads the pre_logits layer TimeSformer lacks: it cannot be kept as is
        assert any("pre_logits layer" in line for line in report.initialised)
        assert any(line.startswith("pre_logits.fc.weight") for line in report.dropped)
    else:
        err = relative_error(ours, logits)
        print(f"npz {layout} logits: relative error {err:.2e}")
        assert err <= TOLERANCE and "head.weight" in report.mapped


@pytest.mark.parametrize("attention_type", [name for name, s in SCHEMES.items() if s.parameter_prefixes])
@pytest.mark.parametrize("temporal_init", ["zero", "official"])
def test_new_stages_start_from_the_spatial_attention(tmp_path, attention_type, temporal_init):
    vit = timm_vit(num_classes=10)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    module, params, _ = convert_checkpoint(
        tmp_path / "vit.pth", preset="timesformer_tiny", attention_type=attention_type, num_heads=HEADS,
        temporal_init=temporal_init,
    )
    for i in range(module.depth):
        block = params[f"blocks_{i}"]
        for stage in (p.rstrip("_") for p in SCHEMES[attention_type].parameter_prefixes):
            for leaf in ("kernel", "bias"):
                np.testing.assert_array_equal(block[f"{stage}_attn"]["qkv"][leaf], block["attn"]["qkv"][leaf])
                np.testing.assert_array_equal(block[f"{stage}_attn"]["proj"][leaf], block["attn"]["proj"][leaf])
            np.testing.assert_array_equal(block[f"{stage}_norm1"]["scale"], block["norm1"]["scale"])
            assert not np.any(block[f"{stage}_fc"]["bias"])
            fc = np.asarray(block[f"{stage}_fc"]["kernel"])
            # The official code leaves block 0's temporal_fc at its random init and zeroes the others.
            assert np.any(fc) == (temporal_init == "official" and i == 0)
    assert not np.any(params["time_embed"])


def test_converted_model_equals_vit_on_static_clips_for_other_sizes(tmp_path):
    # Output size and frames other than the checkpoint's: still a valid model, embeddings resampled.
    vit = timm_vit(num_classes=10)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    module, params, report = convert_checkpoint(
        tmp_path / "vit.pth", preset="timesformer_tiny", image_size=48, num_frames=6, num_heads=HEADS
    )
    assert params["pos_embed"].shape == (1, 1 + 6 * 6, module.hidden_size)
    assert params["time_embed"].shape == (1, 6, module.hidden_size)
    assert report.resampled == ["pos_embed: 4x4 -> 6x6 patch grid (bilinear)"]
