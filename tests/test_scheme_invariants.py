"""Where each attention stage lets information flow: perturb one patch token, see which outputs change.

A block's stages can be switched off one at a time by zeroing their output projection, so each stage's reach is
checked alone against the paper's description, and then the whole block's.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from timesformer_jax.model import Block
from timesformer_jax.model.schemes import stage_parameter_prefixes

T, H, W, D = 4, 4, 6, 16
SOURCE = (1, 2, 3)  # (t, h, w) of the perturbed token


def reach(attention_type, keep_stage):
    """(T, H, W) bool map of grid tokens changed by perturbing SOURCE, and whether cls changed,
    with only the attention stage `keep_stage` switched on (None: all stages)."""
    block = Block(attention_type=attention_type, num_heads=2, mlp_dim=32)
    rng = np.random.default_rng(0)
    cls = jnp.asarray(rng.normal(size=(1, D)), jnp.float32)
    grid = jnp.asarray(rng.normal(size=(1, T, H, W, D)), jnp.float32)
    params = nn.unbox(block.init(jax.random.key(0), cls, grid))["params"]
    # Non-trivial weights everywhere, small enough that no softmax saturates (a saturated weight hides reach).
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(treedef, [0.3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
    off = {f"{prefix}fc" for prefix in stage_parameter_prefixes()} | {"attn"}
    for name in off - {keep_stage} if keep_stage else ():
        if name in params:
            target = params[name]["proj"] if name == "attn" else params[name]
            for k in target:
                target[k] = jnp.zeros_like(target[k])
    # A random direction: a constant shift of all channels would vanish in LayerNorm.
    delta = jnp.zeros_like(grid).at[(0,) + SOURCE].set(jnp.asarray(rng.normal(size=D), jnp.float32))
    cls_a, grid_a = block.apply({"params": params}, cls, grid)
    cls_b, grid_b = block.apply({"params": params}, cls, grid + delta)
    return np.asarray(jnp.any(grid_a != grid_b, axis=-1)[0]), bool(jnp.any(cls_a != cls_b))


def expected(condition):
    t, h, w = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    return condition(t, h, w)


st, sh, sw = SOURCE


def test_divided_temporal_then_spatial():
    changed, cls = reach("divided_space_time", "temporal_fc")
    np.testing.assert_array_equal(changed, expected(lambda t, h, w: (h == sh) & (w == sw)))
    assert not cls  # the temporal stage has no cls token
    changed, cls = reach("divided_space_time", "attn")
    np.testing.assert_array_equal(changed, expected(lambda t, h, w: t == st))
    assert cls


def test_axial_time_width_height():
    changed, cls = reach("axial", "temporal_fc")
    np.testing.assert_array_equal(changed, expected(lambda t, h, w: (h == sh) & (w == sw)))
    assert not cls
    changed, cls = reach("axial", "width_fc")
    np.testing.assert_array_equal(changed, expected(lambda t, h, w: (t == st) & (h == sh)))
    assert not cls
    changed, cls = reach("axial", "attn")
    np.testing.assert_array_equal(changed, expected(lambda t, h, w: (t == st) & (w == sw)))
    assert cls
    changed, cls = reach("axial", None)
    assert changed.all() and cls  # T, then W, then H: one block connects every pair of tokens


def test_sparse_local_global():
    # Local: the H/2 x W/2 window of the source, across all frames.
    changed, cls = reach("sparse_local_global", "local_fc")
    np.testing.assert_array_equal(changed, expected(lambda t, h, w: (h // (H // 2) == sh // (H // 2)) & (w // (W // 2) == sw // (W // 2))))
    assert not cls
    # Global: tokens at stride 2 in t, h and w from the source (same parities), over the whole clip.
    changed, cls = reach("sparse_local_global", "attn")
    np.testing.assert_array_equal(changed, expected(lambda t, h, w: (t % 2 == st % 2) & (h % 2 == sh % 2) & (w % 2 == sw % 2)))
    assert cls
    changed, cls = reach("sparse_local_global", None)
    assert changed.all() and cls


@pytest.mark.parametrize("attention_type", ["joint_space_time", "space_only"])
def test_single_stage_schemes(attention_type):
    changed, cls = reach(attention_type, "attn")
    full = expected(lambda t, h, w: t >= 0)
    np.testing.assert_array_equal(changed, full if attention_type == "joint_space_time" else expected(lambda t, h, w: t == st))
    assert cls
