"""Model behaviour: input checks, intermediates, dtypes, remat, dropout, sharding annotations, embedding resize."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from timesformer_jax.model import ATTENTION_TYPES, create_model
from timesformer_jax.model.embeddings import nearest_source_indices

TINY_CLIP = (2, 4, 32, 32, 3)


def init(model, shape=TINY_CLIP, seed=0):
    video = jax.random.normal(jax.random.key(seed + 1), shape)
    return model.init(jax.random.key(seed), video), video


@pytest.mark.parametrize(
    "shape, expected_text",
    [
        ((4, 32, 32, 3), "got rank 4"),
        ((2, 4, 32, 32, 1), "got C=1"),
        ((2, 4, 3, 32, 32), "got C=32"),
        ((2, 4, 30, 32, 3), "got H=30, W=32"),
    ],
)
def test_bad_video_shapes_name_expected_and_received(shape, expected_text):
    model = create_model("timesformer_tiny")
    variables, _ = init(model)
    with pytest.raises(ValueError, match="expected video \\(B, T, H, W, C\\)") as err:
        model.apply(variables, jnp.zeros(shape))
    assert expected_text in str(err.value) and str(shape) in str(err.value)


def test_frame_count_fixed_without_resizing():
    model = create_model("timesformer_tiny", resize_embeddings=False)
    variables, _ = init(model)
    model.apply(variables, jnp.zeros(TINY_CLIP))
    for bad in [(2, 8, 32, 32, 3), (2, 4, 64, 64, 3)]:
        with pytest.raises(ValueError, match=r"expected video \(B, T=4, 32, 32, 3\).*got \(2, (8, 32|4, 64)"):
            model.apply(variables, jnp.zeros(bad))


def test_sparse_local_global_rejects_odd_grids():
    model = create_model("timesformer_tiny", attention_type="sparse_local_global")
    variables, _ = init(model)
    with pytest.raises(ValueError, match=r"frame count divisible by 2.*\(B, T, H, W, D\) = \(1, 3, 4, 4, 64\)"):
        model.apply(variables, jnp.zeros((1, 3, 32, 32, 3)))
    with pytest.raises(ValueError, match=r"height divisible by 2.*\(1, 4, 5, 5, 64\)"):
        model.apply(variables, jnp.zeros((1, 4, 40, 40, 3)))


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_intermediates_and_attention_weights(attention_type):
    model = create_model("timesformer_tiny", attention_type=attention_type)
    variables, video = init(model)
    logits = model.apply(variables, video)
    logits_w, state = model.apply(variables, video, capture_attention=True, mutable="intermediates")
    # The explicit-softmax path used to capture weights computes the same function as the fused kernel.
    np.testing.assert_allclose(logits_w, logits, rtol=1e-5, atol=1e-5)
    inter = state["intermediates"]
    last = inter[f"blocks_{model.depth - 1}"]
    frames = 1 if attention_type == "space_only" else 4
    batch = 2 * 4 if attention_type == "space_only" else 2
    assert last["tokens"][0].shape == (batch, frames, 4, 4, 64)
    # Features are the final norm of the last block's cls output (frame-averaged for space-only).
    pre_logits = inter["pre_logits"][0]
    head = variables["params"]["head"]
    np.testing.assert_allclose(pre_logits @ nn.unbox(head["kernel"]) + nn.unbox(head["bias"]), logits, atol=1e-5)
    weights = [w for path, w in jax.tree_util.tree_leaves_with_path(inter) if "attention_weights" in jax.tree_util.keystr(path)]
    assert weights and all(w.ndim == 4 and w.shape[-1] == w.shape[-2] for w in weights)
    for w in weights:
        np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)


def test_bf16_compute_keeps_fp32_params():
    fp32 = create_model("timesformer_tiny")
    bf16 = create_model("timesformer_tiny", dtype=jnp.bfloat16)
    variables, video = init(bf16)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nn.unbox(variables["params"])))
    out16, out32 = bf16.apply(variables, video), fp32.apply(variables, video)
    assert out16.dtype == jnp.float32
    assert 0 < float(jnp.max(jnp.abs(out16 - out32))) < 0.05 * float(jnp.max(jnp.abs(out32)))


@pytest.mark.slow
def test_remat_is_the_same_function():
    variables, video = init(create_model("timesformer_tiny"))
    plain = create_model("timesformer_tiny").apply(variables, video)
    remat = create_model("timesformer_tiny", remat=True)
    np.testing.assert_allclose(remat.apply(variables, video), plain, rtol=1e-6, atol=1e-6)
    grads = jax.grad(lambda p: remat.apply({"params": p}, video).sum())(variables["params"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.slow
def test_dropout_and_drop_path_only_in_training():
    model = create_model("timesformer_tiny", dropout_rate=0.1, attention_dropout_rate=0.1, drop_path_rate=0.5)
    variables, video = init(model)
    eval_a, eval_b = model.apply(variables, video), model.apply(variables, video)
    np.testing.assert_array_equal(eval_a, eval_b)
    train = [model.apply(variables, video, train=True, rngs={"dropout": jax.random.key(i)}) for i in range(2)]
    assert not np.allclose(train[0], eval_a) and not np.allclose(train[0], train[1])
    plain = create_model("timesformer_tiny")
    np.testing.assert_allclose(
        plain.apply(variables, video, train=True, rngs={"dropout": jax.random.key(0)}), plain.apply(variables, video)
    )


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_every_param_has_logical_axis_names(attention_type):
    model = create_model("timesformer_tiny", attention_type=attention_type)
    abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(TINY_CLIP))
    specs = nn.get_partition_spec(abstract)["params"]
    boxed = jax.tree.leaves(abstract["params"], is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert all(isinstance(b, nn.Partitioned) and len(b.names) == b.value.ndim for b in boxed)
    names = {n for spec in jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)) for n in spec}
    assert {"embed", "mlp", "heads", "kv", "classes"} <= names


@pytest.mark.parametrize("n_in, n_out", [(4, 6), (14, 21), (14, 28), (8, 96), (8, 16), (7, 3), (3, 7), (16, 8), (5, 5)])
def test_nearest_indices_match_torch(n_in, n_out):
    source = torch.arange(n_in, dtype=torch.float32).reshape(1, 1, n_in)
    expected = F.interpolate(source, size=n_out, mode="nearest").reshape(-1).long().numpy()
    np.testing.assert_array_equal(nearest_source_indices(n_in, n_out), expected)
    np.testing.assert_array_equal(expected, np.minimum(np.arange(n_out) * n_in // n_out, n_in - 1))


@pytest.mark.slow
def test_drop_path_drops_cls_and_patches_of_a_clip_together():
    # Joint attention has two residual branches; an example whose cls token is untouched by both must have
    # untouched patch tokens too, and the other way round.
    from timesformer_jax.model import Block

    block = Block(attention_type="joint_space_time", num_heads=2, mlp_dim=32, drop_path_rate=0.5)
    cls = jax.random.normal(jax.random.key(0), (64, 16))
    grid = jax.random.normal(jax.random.key(1), (64, 2, 2, 2, 16))
    variables = block.init(jax.random.key(2), cls, grid)
    out_cls, out_grid = block.apply(variables, cls, grid, False, rngs={"dropout": jax.random.key(3)})
    cls_kept = np.asarray(jnp.all(out_cls == cls, axis=-1))
    grid_kept = np.asarray(jnp.all((out_grid == grid).reshape(64, -1), axis=-1))
    assert 0 < cls_kept.sum() < 64
    np.testing.assert_array_equal(cls_kept, grid_kept)


def test_padded_attention_equals_unpadded_attention_and_its_gradients():
    """The padding that lets cuDNN train odd group lengths (197, 1569) changes nothing: padded keys are masked
    out and padded query rows dropped. Checked on XLA's implementation, which takes the same sequence lengths."""
    from timesformer_jax.model.attention import padded_attention

    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(3, 13, 2, 8)), jnp.float32) for _ in range(3))

    def plain(q, k, v):
        return jax.nn.dot_product_attention(q, k, v, implementation="xla")

    def padded(q, k, v):
        return padded_attention(q, k, v, "xla", multiple=8)

    assert padded(q, k, v).shape == (3, 13, 2, 8)
    np.testing.assert_allclose(padded(q, k, v), plain(q, k, v), atol=1e-6)
    loss = lambda f: lambda *a: (f(*a) * jnp.arange(13.0)[None, :, None, None]).sum()  # noqa: E731
    grads_padded = jax.grad(loss(padded), argnums=(0, 1, 2))(q, k, v)
    grads_plain = jax.grad(loss(plain), argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(grads_padded, grads_plain):
        np.testing.assert_allclose(a, b, atol=1e-5)


# one policy in `make test`, all three in CI (each compiles a remat train step: ~20 s on a 2-core CPU)
@pytest.mark.parametrize("policy", ["nothing", pytest.param("dots_no_batch", marks=pytest.mark.slow),
                                    pytest.param("dots", marks=pytest.mark.slow)])
def test_remat_policies_change_memory_not_results(policy):
    """Every remat policy computes the same loss and gradients as no remat (remat only recomputes)."""
    fields = dict(image_size=32, num_frames=4, patch_size=8, hidden_size=32, depth=2, num_heads=2, mlp_dim=64,
                  num_classes=5)
    plain = create_model("timesformer_tiny", **fields)
    remat = create_model("timesformer_tiny", **fields, remat=True, remat_policy=policy)
    video = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 32, 32, 3)), jnp.float32)
    params = plain.init(jax.random.key(0), video)["params"]

    def loss(model):
        return lambda p: (model.apply({"params": p}, video) ** 2).sum()

    np.testing.assert_allclose(jax.jit(loss(remat))(params), jax.jit(loss(plain))(params), rtol=1e-6)
    grads = [jax.jit(jax.grad(loss(model)))(params) for model in (remat, plain)]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_remat_policy_is_named():
    from timesformer_jax.model.presets import check_model_fields

    with pytest.raises(ValueError, match="remat_policy 'everything'.*dots_no_batch"):
        check_model_fields({"remat_policy": "everything"})


def test_weight_init_fan_in_scales_every_dense_kernel_to_its_fan_in():
    fields = dict(patch_size=8, hidden_size=256, depth=1, num_heads=4, mlp_dim=1024, image_size=32, num_frames=2,
                  num_classes=400)
    from flax.traverse_util import flatten_dict
    from scipy.stats import truncnorm

    official, fan_in = (flatten_dict(nn.unbox(create_model("timesformer_tiny", **fields, weight_init=init).init(
        jax.random.key(0), jnp.zeros((1, 2, 32, 32, 3))))["params"]) for init in ("official", "fan_in"))
    truncated_std_share = truncnorm(-2, 2).std()  # what a normal truncated at 2 sigma keeps of its std
    block = "blocks_0"
    fan_ins = {("patch_embed", "kernel"): 8 * 8 * 3, ("head", "kernel"): 256}
    for stage in ("attn", "temporal_attn"):
        fan_ins[(block, stage, "qkv", "kernel")] = 256  # width in
        fan_ins[(block, stage, "proj", "kernel")] = 256  # heads x head_dim in
    fan_ins[(block, "mlp", "fc1", "kernel")] = 256
    fan_ins[(block, "mlp", "fc2", "kernel")] = 1024

    for path, n in fan_ins.items():
        for params, stddev in ((fan_in, 1 / np.sqrt(n)), (official, 0.02)):
            kernel = np.asarray(params[path])
            assert abs(kernel.std() / (truncated_std_share * stddev) - 1) < 0.1, (path, kernel.std(), stddev)
            assert np.abs(kernel).max() <= 2 * stddev * (1 + 1e-6), path
    # The inits with their own fields are left alone: the time embedding and temporal_fc at zero, the position
    # embedding and cls token at the official 0.02.
    for path in (("time_embed",), (block, "temporal_fc", "kernel")):
        assert not np.asarray(fan_in[path]).any(), path
    for path in (("pos_embed",), ("cls_token",)):
        np.testing.assert_array_equal(fan_in[path], official[path])


def test_unknown_weight_init_is_named():
    from timesformer_jax.model.presets import check_model_fields

    with pytest.raises(ValueError, match="weight_init.*'official', 'fan_in'"):
        check_model_fields({"weight_init": "xavier"})


@pytest.mark.parametrize("attention_type, stages", [("divided_space_time", ["temporal_fc"]),
                                                     ("sparse_local_global", ["local_fc"]),
                                                     ("axial", ["temporal_fc", "width_fc"])])
def test_stage_fc_init_std_initialises_every_stage_projection(attention_type, stages):
    zero = create_model("timesformer_tiny", attention_type=attention_type)
    drawn = create_model("timesformer_tiny", attention_type=attention_type, stage_fc_init_std=0.02)
    for model, nonzero in ((zero, False), (drawn, True)):
        block = nn.unbox(model.init(jax.random.key(0), jnp.zeros(model.clip_shape(1))))["params"]["blocks_0"]
        assert sorted(name for name in block if name.endswith("_fc")) == sorted(stages)
        for name in stages:
            assert bool(jnp.any(block[name]["kernel"] != 0)) == nonzero, (attention_type, name)


def test_fields_stored_under_their_earlier_name_still_load(tmp_path):
    import json

    from timesformer_jax.convert.converted_checkpoint import FORMAT, read_converted_config
    from timesformer_jax.model.presets import check_model_fields
    from timesformer_jax.train.run_record import read_stored_config, stored_config

    with pytest.raises(ValueError, match="temporal_fc_init_std is now stage_fc_init_std"):
        check_model_fields({"temporal_fc_init_std": 0.02})
    model = dict(create_model("timesformer_tiny").__dict__)
    fields = {k: model[k] for k in ("num_classes", "image_size", "num_frames", "patch_size", "hidden_size", "depth",
                                    "num_heads", "mlp_dim")}
    (tmp_path / "timesformer.json").write_text(json.dumps(
        {"format": FORMAT, "model": {**fields, "temporal_fc_init_std": 0.02}}))
    assert read_converted_config(tmp_path)["model"]["stage_fc_init_std"] == 0.02
    (tmp_path / "config.json").write_text(json.dumps({"model": {"temporal_fc_init_std": 0.03}}))
    # A run stored before scanned blocks existed holds unrolled blocks.
    assert read_stored_config(tmp_path)["model"] == {"stage_fc_init_std": 0.03, "scan_blocks": False}
    assert stored_config(tmp_path).model.stage_fc_init_std == 0.03
