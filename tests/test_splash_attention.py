"""The Pallas splash kernel (`attention_impl="splash"`, run in interpret mode on CPU) against XLA attention: every
scheme's logits and parameter gradients, group lengths that are not a multiple of the kernel's block, bf16, and
the `shard_map` over a mesh."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_gradients import logits_and_grads

from timesformer_jax.model import create_model
from timesformer_jax.model.schemes import SCHEMES
from timesformer_jax.model.splash import SPLASH_BLOCK, splash_attention

# 4 frames of a 4 x 4 patch grid: groups of 17 (spatial), 4 (temporal), 65 (joint), 16 (local windows), 9
# (global), 4 and 5 (axial width, height): none a multiple of the block. Several blocks: the direct test below.
TINY = dict(num_classes=5, image_size=16, num_frames=4, patch_size=4, hidden_size=16, depth=1, num_heads=2,
            mlp_dim=32)


# Axial and sparse local/global hold three and two group lengths (an interpret-mode compile each): in the slow set.
MULTI_LENGTH_SCHEMES = ("axial", "sparse_local_global")


@pytest.mark.parametrize("attention_type", [
    pytest.param(name, marks=pytest.mark.slow) if name in MULTI_LENGTH_SCHEMES else name for name in sorted(SCHEMES)])
def test_splash_matches_xla_attention_on_every_scheme(attention_type):
    lengths = {layout.length for layout in SCHEMES[attention_type].layouts(4, 4, 4)}
    assert all(length % SPLASH_BLOCK for length in lengths)
    xla = create_model("timesformer_base", attention_type=attention_type, attention_impl="xla", **TINY)
    splash = xla.clone(attention_impl="splash")
    video = jax.random.normal(jax.random.PRNGKey(1), (1, 4, 16, 16, 3))
    params = xla.init(jax.random.PRNGKey(0), video)["params"]
    want_logits, want_grads = logits_and_grads(xla, params, video)
    logits, grads = logits_and_grads(splash, params, video)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-5 * float(jnp.abs(want_logits).max()))
    for (path, want), got in zip(jax.tree_util.tree_leaves_with_path(want_grads), jax.tree.leaves(grads)):
        scale = float(jnp.abs(want).max())
        assert float(jnp.abs(got - want).max()) <= 1e-4 * scale, jax.tree_util.keystr(path)


def test_splash_over_several_kernel_blocks_matches_xla_values_and_gradients():
    """130 tokens: two blocks of 128, the second almost all padding."""
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    _assert_splash_matches_xla(*(jax.random.normal(key, (2, 130, 2, 16)) for key in keys))


def _assert_splash_matches_xla(q, k, v):
    """Values to 1e-5, and the gradients of sum(sin(attention)) to 1e-4 of their largest entry."""

    def loss(attention):
        return lambda q, k, v: jnp.sum(jnp.sin(attention(q, k, v)))

    np.testing.assert_allclose(splash_attention(q, k, v), jax.nn.dot_product_attention(q, k, v), atol=1e-5)
    got = jax.grad(loss(splash_attention), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(loss(jax.nn.dot_product_attention), argnums=(0, 1, 2))(q, k, v)
    for g, w in zip(got, want):
        assert float(jnp.abs(g - w).max()) <= 1e-4 * float(jnp.abs(w).max())


def test_long_groups_get_blocks_whose_metadata_fits_the_scalar_memory():
    from timesformer_jax.model import splash

    for length in (8, 197, 1569, 37633, 40961, 75265, 301057):
        block = splash.splash_block(length)
        assert block % SPLASH_BLOCK == 0 and -(-length // block) <= splash.MAX_BLOCKS_PER_SIDE
        assert block == SPLASH_BLOCK or -(-length // (block // 2)) > splash.MAX_BLOCKS_PER_SIDE  # the smallest


@pytest.mark.slow  # another interpret-mode kernel (about 15 s); the block rule above is in the fast set
def test_splash_in_larger_blocks_matches_xla_values_and_gradients(monkeypatch):
    """The kernel in the larger blocks a very long group gets: 300 tokens with at most 2 blocks per side run in
    blocks of 256."""
    from timesformer_jax.model import splash

    monkeypatch.setattr(splash, "MAX_BLOCKS_PER_SIDE", 2)
    assert splash.splash_block(300) == 256
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    _assert_splash_matches_xla(*(jax.random.normal(key, (1, 300, 1, 16)) for key in keys))


def test_splash_in_bfloat16_follows_float32_attention():
    q, k, v = (jax.random.normal(key, (2, 9, 2, 16)) for key in jax.random.split(jax.random.PRNGKey(0), 3))
    want = jax.nn.dot_product_attention(q, k, v)
    got = splash_attention(*(x.astype(jnp.bfloat16) for x in (q, k, v)))
    assert got.dtype == jnp.bfloat16 and got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=3e-2)


SHARDED = """
import flax.linen as nn
import jax, jax.numpy as jnp, numpy as np
from timesformer_jax.model import create_model
from timesformer_jax.parallel import create_mesh, sharding_context

xla = create_model("timesformer_base", attention_type="joint_space_time", attention_impl="xla", num_classes=4,
                   image_size=12, num_frames=2, patch_size=4, hidden_size=16, depth=1, num_heads=2, mlp_dim=32)
splash = xla.clone(attention_impl="splash")
video = jax.random.normal(jax.random.PRNGKey(1), (2, 2, 12, 12, 3))
params = nn.unbox(xla.init(jax.random.PRNGKey(0), video)["params"])
mesh = create_mesh({"data": 2, "fsdp": 1, "tensor": 2})

def run(model):
    def loss(p):
        logits = model.apply({"params": p}, video)
        return jnp.sum(jnp.sin(logits)), logits
    step = jax.jit(jax.value_and_grad(loss, has_aux=True))
    with sharding_context(mesh):
        (_, logits), grads = step(params)
        return logits, grads, str(jax.make_jaxpr(step)(params))

want_logits, want_grads, _ = run(xla)
logits, grads, program = run(splash)
assert "shard_map" in program, "splash ran without shard_map under a mesh"
np.testing.assert_allclose(logits, want_logits, rtol=1e-5, atol=1e-6)
for want, got in zip(jax.tree.leaves(want_grads), jax.tree.leaves(grads)):
    assert float(jnp.abs(got - want).max()) <= 1e-4 * float(jnp.abs(want).max())
print("OK")
"""


@pytest.mark.slow
def test_splash_runs_under_shard_map_on_a_mesh(run_on_devices):
    """Groups over `data`, heads over `tensor` (4 simulated devices): the same logits and gradients as XLA."""
    run_on_devices(SHARDED, devices=4)


def test_tpus_pick_splash_for_long_groups_only():
    from timesformer_jax.train.experiment import SPLASH_MIN_GROUP_LENGTH, platform_attention

    def picked(model, platform):
        chosen = platform_attention(model, platform)
        return chosen.attention_impl, chosen.splash_min_length

    joint = create_model("timesformer_base", attention_type="joint_space_time")  # groups of 8 x 196 + 1 tokens
    divided = create_model("timesformer_base")  # 197 and 8
    assert 197 < SPLASH_MIN_GROUP_LENGTH <= 785
    assert picked(joint, "tpu") == ("splash", SPLASH_MIN_GROUP_LENGTH)
    assert picked(joint.clone(num_frames=1), "tpu") == (None, 0)  # one frame: 197 tokens
    assert picked(divided, "tpu") == (None, 0)
    # 448 px divided: 785-token spatial groups on the kernel, the 8-token temporal ones on XLA's attention
    assert picked(divided.clone(image_size=448), "tpu") == ("splash", SPLASH_MIN_GROUP_LENGTH)
    assert picked(joint, "cpu") == (None, 0)
    assert picked(joint.clone(dtype=jnp.bfloat16), "gpu") == ("cudnn", 0)
    assert picked(joint.clone(attention_impl="xla"), "tpu") == ("xla", 0)
    assert picked(joint.clone(attention_impl="splash"), "tpu") == ("splash", 0)  # set: every group


def test_splash_min_length_sends_shorter_groups_to_xla(monkeypatch):
    """Divided attention on a 4 x 4 grid of 4 frames: spatial groups of 17 tokens, temporal ones of 4. With
    splash_min_length 10 only the spatial stage calls the kernel, and the logits equal XLA attention's."""
    from timesformer_jax.model import attention

    lengths = []
    real_splash = attention.splash_attention

    def recording_splash(q, k, v):
        lengths.append(q.shape[1])
        return real_splash(q, k, v)

    monkeypatch.setattr(attention, "splash_attention", recording_splash)
    model = create_model("timesformer_base", attention_impl="xla", **TINY)
    video = jax.random.normal(jax.random.PRNGKey(1), (1, 4, 16, 16, 3))
    params = model.init(jax.random.PRNGKey(0), video)["params"]
    expected = model.apply({"params": params}, video)
    mixed = model.clone(attention_impl="splash", splash_min_length=10).apply({"params": params}, video)
    assert set(lengths) == {17}  # the spatial groups only, once per block
    np.testing.assert_allclose(mixed, expected, atol=1e-5)


def test_a_splash_model_exports_for_tpu_with_the_kernel():
    """Lowered for TPU (here without one), the kernel is Mosaic's `tpu_custom_call`, on jax.export's list of
    stable custom calls: the serialized model round-trips."""
    from jax import export

    model = create_model("timesformer_base", attention_type="joint_space_time", attention_impl="splash", **TINY)
    video = jax.ShapeDtypeStruct((1, 4, 16, 16, 3), jnp.float32)
    params = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.PRNGKey(0), jnp.zeros(video.shape))["params"]))
    forward = jax.jit(lambda p, x: model.apply({"params": p}, x))
    exported = export.export(forward, platforms=("tpu",))(params, video)
    assert "tpu_custom_call" in exported.mlir_module()
    restored = export.deserialize(exported.serialize())
    assert restored.platforms == ("tpu",) and restored.out_avals[0].shape == (1, 5)
