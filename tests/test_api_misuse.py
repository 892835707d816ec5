"""Library calls with arguments no model can use: each is refused with a message naming what was expected."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import timesformer_jax
from timesformer_jax.inference.classify import classify
from timesformer_jax.inference.features import FeatureExtractor
from timesformer_jax.inference.windows import plan_windows


@pytest.fixture(scope="module")
def tiny():
    module = timesformer_jax.create_model("timesformer_tiny")
    params = module.init(jax.random.PRNGKey(0), jnp.zeros(module.clip_shape()))["params"]
    return timesformer_jax.PretrainedTimeSformer(module, params)


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int32])
def test_model_refuses_integer_video(tiny, dtype):
    video = jnp.full(tiny.module.clip_shape(), 200, dtype)
    with pytest.raises(ValueError, match=f"expected float video, already normalised; got dtype {np.dtype(dtype)}"):
        tiny.module.apply({"params": tiny.params}, video)


def test_model_refuses_an_empty_batch(tiny):
    with pytest.raises(ValueError, match="B >= 1; got an empty batch"):
        tiny.module.apply({"params": tiny.params}, jnp.zeros(tiny.module.clip_shape(0)))


@pytest.mark.parametrize("overrides, message", [
    ({"num_heads": 0}, "num_heads must be a positive integer, got 0"),
    ({"num_heads": 3}, "num_heads=3 does not divide hidden_size=64"),
    ({"depth": -1}, "depth must be a positive integer"),
    ({"num_frames": 2.5}, "num_frames must be a positive integer"),
    ({"drop_path_rate": 1.5}, r"drop_path_rate must be a number in \[0, 1\)"),
    ({"layer_norm_eps": float("nan")}, "layer_norm_eps must be a positive number"),
])
def test_model_fields_out_of_range_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        timesformer_jax.create_model("timesformer_tiny", **overrides)


def test_load_pretrained_refuses_zero_heads(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "vit.safetensors"
    # A minimal timm-named image ViT: what the converter needs to infer a model.
    width, patch = 64, 8
    state = {"cls_token": np.zeros((1, 1, width), np.float32), "pos_embed": np.zeros((1, 17, width), np.float32),
             "patch_embed.proj.weight": np.zeros((width, 3, patch, patch), np.float32),
             "blocks.0.attn.qkv.weight": np.zeros((3 * width, width), np.float32)}
    save_file(state, str(path))
    with pytest.raises(ValueError, match="num_heads must be a positive integer, got 0"):
        timesformer_jax.load_pretrained(path, num_heads=0)


def test_classify_refuses_a_label_list_of_the_wrong_length(tiny):
    with pytest.raises(ValueError, match=r"one label per class of the model \(10\), got 2 labels"):
        classify(tiny, ["unused.mp4"], labels=["a", "b"])


@pytest.mark.parametrize("batch_size", [0, -1])
def test_classify_refuses_a_batch_size_below_one(tiny, batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a positive integer .*got {batch_size}"):
        classify(tiny, ["unused.mp4"], batch_size=batch_size)


def test_window_strides_are_bounded(tiny):
    extractor = FeatureExtractor(tiny, stride_seconds=1e-6)
    with pytest.raises(ValueError, match="at least one frame of the video"):
        extractor.plan(300, 30.0)
    with pytest.raises(ValueError, match="more than 200000"):
        plan_windows(10_000_000, 30.0, 4, 2, stride_seconds=1 / 30)
    with pytest.raises(ValueError, match="stride_seconds must be positive"):
        FeatureExtractor(tiny, stride_seconds=0)
    # One frame apart is the finest stride: a window per frame while the clip fits.
    assert plan_windows(100, 30.0, 4, 2, stride_seconds=1 / 30).num_windows == 100 - 8 + 1
