"""Parameter counts of every preset and scheme against the PyTorch reference's count for the same config."""
import jax
import pytest
import torch
from transformers import TimesformerForVideoClassification

from timesformer_jax.bench.reference import hf_config
from timesformer_jax.model import abstract_params
from timesformer_jax.model import PRESETS, REFERENCE_SCHEMES, create_model


def count(params) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def hf_count(preset: str, attention_type: str) -> int:
    config = hf_config({**PRESETS[preset], "attention_type": attention_type})
    with torch.device("meta"):  # shapes only, no memory
        return sum(t.numel() for t in TimesformerForVideoClassification(config).parameters())


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("attention_type", REFERENCE_SCHEMES)
def test_count_matches_pytorch_reference(preset, attention_type):
    ours = count(abstract_params(create_model(preset, attention_type=attention_type)))
    assert ours == hf_count(preset, attention_type)


def test_base_divided_count_is_the_papers_model():
    # 121.4M in the paper leaves out the embeddings; counting them the official model has 121,566,352.
    assert count(abstract_params(create_model("timesformer_base"))) == 121_566_352


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_new_schemes_count_extra_attention_sets(preset):
    # L+G has two attention sets per block like T+S (Table 1: 121.4M for both); axial has a third one
    # (LayerNorm 2D + qkv 3D^2 + 3D + proj D^2 + D + fc D^2 + D), 156.3M in Table 1.
    d, depth = PRESETS[preset]["hidden_size"], PRESETS[preset]["depth"]
    divided = hf_count(preset, "divided_space_time")
    attention_set = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * d + d)
    assert count(abstract_params(create_model(preset, attention_type="sparse_local_global"))) == divided
    assert count(abstract_params(create_model(preset, attention_type="axial"))) == divided + depth * attention_set
