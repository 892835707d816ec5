"""Scanned blocks (`scan_blocks=True`): the same function as unrolled blocks, and both parameter layouts at every
boundary (conversion from official / HF checkpoints, converted directories, pretrained init, per-block outputs).
References: the unrolled model, and the Hugging Face Timesformer itself (transformers, random weights)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_gradients import logits_and_grads

from timesformer_jax.model import create_model
from timesformer_jax.model.block_layout import block_outputs, is_scanned, stack_blocks, to_layout, unstack_blocks

TINY = dict(num_classes=5, image_size=24, num_frames=4, patch_size=4, hidden_size=16, depth=3, num_heads=2,
            mlp_dim=32, drop_path_rate=0.1)


def _video() -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(1), (1, 4, 24, 24, 3))


@pytest.mark.parametrize("attention_type, remat", [
    ("divided_space_time", True), pytest.param("axial", False, marks=pytest.mark.slow),
    pytest.param("divided_space_time", False, marks=pytest.mark.slow),
    pytest.param("joint_space_time", True, marks=pytest.mark.slow),
])
def test_scanned_blocks_compute_what_unrolled_blocks_compute(attention_type, remat):
    unrolled = create_model("timesformer_base", attention_type=attention_type, remat=remat, **TINY)
    scanned = unrolled.clone(scan_blocks=True)
    video = _video()
    params = nn.unbox(unrolled.init(jax.random.PRNGKey(0), video))["params"]
    want_logits, want_grads = logits_and_grads(unrolled, params, video)
    logits, grads = logits_and_grads(scanned, stack_blocks(params), video)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-6)
    grads = unstack_blocks(grads)
    assert jax.tree.structure(grads) == jax.tree.structure(want_grads)
    for (path, want), got in zip(jax.tree_util.tree_leaves_with_path(want_grads), jax.tree.leaves(grads)):
        assert float(jnp.abs(got - want).max()) <= 1e-5 * float(jnp.abs(want).max()) + 1e-7, path


def test_scanned_parameters_stack_on_a_replicated_leading_axis():
    model = create_model("timesformer_base", scan_blocks=True, **TINY)
    boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0), _video())["params"]
    qkv = boxed["blocks"]["attn"]["qkv"]["kernel"]
    assert qkv.value.shape == (3, 16, 3, 2, 8) and qkv.names == (None, "embed", None, "heads", "kv")
    assert not any(key.startswith("blocks_") for key in boxed)


def test_layouts_convert_both_ways_and_name_a_gap():
    params = {"head": np.zeros(2), **{f"blocks_{i}": {"w": np.full((2,), i, np.float32)} for i in range(3)}}
    stacked = stack_blocks(params)
    assert is_scanned(stacked) and stacked["blocks"]["w"].shape == (3, 2) and isinstance(stacked["blocks"]["w"],
                                                                                         np.ndarray)
    back = unstack_blocks(stacked)
    assert sorted(back) == sorted(params) and all((back[k]["w"] == params[k]["w"]).all() for k in params if k != "head")
    assert to_layout(params, scanned=False) is params and to_layout(stacked, scanned=True) is stacked
    with pytest.raises(ValueError, match=r"blocks \[0, 2\]"):
        stack_blocks({"blocks_0": {"w": np.zeros(1)}, "blocks_2": {"w": np.zeros(1)}})


def test_per_block_outputs_read_the_same_from_either_layout():
    unrolled = create_model("timesformer_base", **TINY)
    scanned = unrolled.clone(scan_blocks=True)
    video = _video()
    params = nn.unbox(unrolled.init(jax.random.PRNGKey(0), video))["params"]
    _, want = unrolled.apply({"params": params}, video, capture_attention=True, mutable="intermediates")
    _, got = scanned.apply({"params": stack_blocks(params)}, video, capture_attention=True, mutable="intermediates")
    for i in range(TINY["depth"]):
        expected, actual = block_outputs(want["intermediates"], i), block_outputs(got["intermediates"], i)
        assert jax.tree.structure(actual) == jax.tree.structure(expected)
        for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_hf_checkpoint_loads_scanned_and_converts_back_unrolled(tmp_path):
    """A Hugging Face Timesformer read into a scanned model classifies as transformers does; converted with
    scan_blocks=True it is still written unrolled (what every reader of converted checkpoints expects), and a
    training init from it fills a scanned model."""
    from torch_reference import official_logits, randomised_hf_model, relative_error

    import timesformer_jax
    from timesformer_jax.convert.conversion import convert_to_directory
    from timesformer_jax.convert.converted_checkpoint import load_converted
    from timesformer_jax.train.pretrained_init import fit_pretrained

    hf = randomised_hf_model("divided_space_time")
    hf.save_pretrained(tmp_path / "hf")
    model = timesformer_jax.load_pretrained(tmp_path / "hf", scan_blocks=True)
    assert model.module.scan_blocks and is_scanned(model.params)
    size = model.module.clip_shape()
    video = np.asarray(jax.random.normal(jax.random.PRNGKey(2), size), np.float32)
    assert relative_error(model(video), official_logits(hf, video)) < 1e-5

    convert_to_directory(tmp_path / "hf", tmp_path / "converted", scan_blocks=True)
    fields, params, _ = load_converted(tmp_path / "converted")
    assert "blocks_0" in params and not is_scanned(params)
    initial = nn.unbox(model.module.init(jax.random.PRNGKey(0), jnp.zeros(size)))["params"]
    fitted = fit_pretrained(params, initial, log=lambda message: None)
    assert is_scanned(fitted)
    np.testing.assert_array_equal(fitted["blocks"]["attn"]["qkv"]["kernel"],
                                  np.asarray(model.params["blocks"]["attn"]["qkv"]["kernel"]))
