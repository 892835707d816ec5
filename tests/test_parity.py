"""Parity with the PyTorch reference: HF checkpoints and official .pyth files loaded by `load_pretrained`."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import timesformer_jax
from timesformer_jax.model import REFERENCE_SCHEMES
from torch_reference import (
    SMALL_CONFIG,
    official_logits,
    official_state_dict,
    randomised_hf_model,
    relative_error,
    to_pixel_values,
)

TOLERANCE = 1e-5


def random_clip(frames=4, size=32, batch=2, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, frames, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("attention_type", REFERENCE_SCHEMES)
def test_hf_checkpoint_matches_reference(tmp_path, attention_type):
    hf = randomised_hf_model(attention_type)
    hf.save_pretrained(tmp_path)
    model = timesformer_jax.load_pretrained(tmp_path)
    assert model.module.num_heads == SMALL_CONFIG["num_attention_heads"]
    assert model.module.attention_type == attention_type
    video = random_clip()
    err = relative_error(model(video), official_logits(hf, video))
    print(f"{attention_type}: HF checkpoint relative error {err:.2e}")
    assert err <= TOLERANCE


def test_hf_space_only_classifies_each_frame():
    # Why the reference above averages frames itself: HF's space-only model returns one row per frame.
    hf = randomised_hf_model("space_only")
    video = random_clip()
    with torch.no_grad():
        logits = hf(to_pixel_values(video)).logits
    assert logits.shape == (video.shape[0] * video.shape[1], SMALL_CONFIG["num_labels"])


@pytest.mark.parametrize("attention_type", REFERENCE_SCHEMES)
def test_official_pyth_matches_reference(tmp_path, attention_type):
    hf = randomised_hf_model(attention_type, seed=3)
    path = tmp_path / "checkpoint_epoch_00015.pyth"
    # The official trainer saves epoch, model_state, optimizer_state and the config dumped as YAML.
    torch.save(
        {
            "epoch": 15,
            "model_state": official_state_dict(hf),
            "optimizer_state": torch.optim.SGD(hf.parameters(), lr=0.1, momentum=0.9).state_dict(),
            "cfg": "MODEL:\n  NUM_CLASSES: 7\nTIMESFORMER:\n  ATTENTION_TYPE: " + attention_type + "\n",
        },
        path,
    )
    model = timesformer_jax.load_pretrained(path, num_heads=SMALL_CONFIG["num_attention_heads"])
    video = random_clip(seed=4)
    err = relative_error(model(video), official_logits(hf, video))
    print(f"{attention_type}: official .pyth relative error {err:.2e}")
    assert err <= TOLERANCE


def test_official_pyth_head_count_needs_a_hint(tmp_path):
    path = tmp_path / "model.pyth"
    torch.save({"model_state": official_state_dict(randomised_hf_model("divided_space_time"))}, path)
    with pytest.raises(ValueError, match="num_heads"):
        timesformer_jax.load_pretrained(path)


def _resized_reference(hf, frames, size):
    """An HF model for a bigger clip whose embeddings are torch's own nearest resize of `hf`'s."""
    big = randomised_hf_model(hf.config.attention_type, num_frames=frames, image_size=size)
    big.load_state_dict(
        {k: v for k, v in hf.state_dict().items() if "position_embeddings" not in k and "time_embeddings" not in k},
        strict=False,
    )
    emb, big_emb = hf.timesformer.embeddings, big.timesformer.embeddings
    grid_in = SMALL_CONFIG["image_size"] // SMALL_CONFIG["patch_size"]
    grid_out = size // SMALL_CONFIG["patch_size"]
    with torch.no_grad():
        pos = emb.position_embeddings
        patches = pos[:, 1:].transpose(1, 2).reshape(1, -1, grid_in, grid_in)
        patches = F.interpolate(patches, size=(grid_out, grid_out), mode="nearest").flatten(2).transpose(1, 2)
        big_emb.position_embeddings.copy_(torch.cat([pos[:, :1], patches], dim=1))
        if hasattr(emb, "time_embeddings"):
            time = F.interpolate(emb.time_embeddings.transpose(1, 2), size=frames, mode="nearest").transpose(1, 2)
            big_emb.time_embeddings.copy_(time)
    return big


@pytest.mark.parametrize("attention_type", REFERENCE_SCHEMES)
def test_forward_resizes_embeddings_like_torch_nearest(tmp_path, attention_type):
    hf = randomised_hf_model(attention_type, seed=5)
    hf.save_pretrained(tmp_path)
    model = timesformer_jax.load_pretrained(tmp_path)
    frames, size = 6, 56  # 4 -> 6 frames, 4x4 -> 7x7 patch grid
    reference = _resized_reference(hf, frames, size)
    video = random_clip(frames=frames, size=size, seed=6)
    err = relative_error(model(video), official_logits(reference, video))
    print(f"{attention_type}: resized-embedding relative error {err:.2e}")
    assert err <= TOLERANCE


def test_hf_base_model_without_head_gives_features(tmp_path):
    # TimesformerModel (no classifier) -> num_classes=0, features = the final norm of the cls token.
    hf = randomised_hf_model("divided_space_time", seed=7).timesformer
    hf.save_pretrained(tmp_path)
    model = timesformer_jax.load_pretrained(tmp_path)
    assert model.module.num_classes == 0
    video = random_clip(seed=8)
    with torch.no_grad():
        reference = hf(to_pixel_values(video)).last_hidden_state[:, 0].numpy()
    assert relative_error(model(video), reference) <= TOLERANCE


def test_official_state_dict_as_safetensors(tmp_path):
    from safetensors.torch import save_file

    hf = randomised_hf_model("joint_space_time", seed=9)
    path = tmp_path / "timesformer.safetensors"
    save_file({k.removeprefix("model."): v.contiguous() for k, v in official_state_dict(hf).items()}, path)
    model = timesformer_jax.load_pretrained(path, num_heads=SMALL_CONFIG["num_attention_heads"])
    video = random_clip(seed=10)
    assert relative_error(model(video), official_logits(hf, video)) <= TOLERANCE
