"""Mesh construction and the logical-axis rules on simulated devices (subprocess: the device count is fixed
when JAX's backend starts)."""
import textwrap

import pytest

from timesformer_jax.parallel import resolve_mesh_shape


def test_mesh_shape_resolution():
    assert resolve_mesh_shape({"data": -1}, 8) == (8, 1, 1)
    assert resolve_mesh_shape({"data": 4, "tensor": 2}, 8) == (4, 1, 2)
    assert resolve_mesh_shape({"data": -1, "fsdp": 2, "tensor": 2}, 16) == (4, 2, 2)
    with pytest.raises(ValueError, match="at most one -1"):
        resolve_mesh_shape({"data": -1, "fsdp": -1}, 8)
    with pytest.raises(ValueError, match="8 devices are not a multiple of 3"):
        resolve_mesh_shape({"data": -1, "tensor": 3}, 8)
    with pytest.raises(ValueError, match="has 4 devices, but 8 are available"):
        resolve_mesh_shape({"data": 2, "tensor": 2}, 8)
    with pytest.raises(ValueError, match="unknown mesh axes"):
        resolve_mesh_shape({"model": 2}, 8)


SCRIPT = textwrap.dedent(
    """
    import flax.linen as nn
    import jax
    import numpy as np
    from jax.sharding import PartitionSpec as P

    from timesformer_jax.model import create_model
    from timesformer_jax.parallel import (LOGICAL_AXIS_RULES, IndivisibleDimensionError, batch_sharding, create_mesh,
                                          logical_shardings)

    video = np.random.default_rng(0).normal(size=(8, 4, 32, 32, 3)).astype(np.float32)
    model = create_model("timesformer_tiny")  # 2 heads, MLP 128, width 64
    reference = model.apply(model.init(jax.random.key(0), video), video)
    for sizes in ({"data": -1, "fsdp": 2, "tensor": 2}, {"data": 2, "tensor": 4}):
        mesh = create_mesh(sizes)
        abstract = jax.eval_shape(model.init, jax.random.key(0), video)
        if mesh.shape["tensor"] == 4:  # 2 heads cannot split over tensor=4: an error, unless asked to replicate
            try:
                logical_shardings(abstract, mesh)
                raise AssertionError("an indivisible dimension was sharded or replicated silently")
            except IndivisibleDimensionError as e:
                assert "['params']['blocks_0']['attn']" in str(e) and "(2, logical axis 'heads')" in str(e), e
                assert "logical axis 'heads'" in str(e) and "('tensor',) of size 4" in str(e), e
                assert "'tensor': 4" in str(e), e
        shardings = logical_shardings(abstract, mesh, replicate_indivisible=mesh.shape["tensor"] == 4)
        with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
            variables = jax.jit(model.init, out_shardings=shardings)(jax.random.key(0), video)
            logits = jax.jit(model.apply)(variables, jax.device_put(video, batch_sharding(mesh)))
        params = nn.unbox(variables["params"])
        qkv = params["blocks_0"]["attn"]["qkv"]["kernel"].sharding.spec
        fc1 = params["blocks_0"]["mlp"]["fc1"]["kernel"].sharding.spec
        print(dict(mesh.shape), "qkv", qkv, "fc1", fc1)
        if mesh.shape["tensor"] == 2:
            assert qkv == P("fsdp", None, "tensor", None) and fc1 == P("fsdp", "tensor"), (qkv, fc1)
        else:  # replicate_indivisible: the heads are replicated; the MLP still splits
            assert qkv == P("fsdp", None, None, None) and fc1 == P("fsdp", "tensor"), (qkv, fc1)  # fsdp has size 1
        np.testing.assert_allclose(np.asarray(logits), np.asarray(reference), rtol=1e-5, atol=1e-5)
        print("mesh OK")
    """
)


@pytest.mark.slow
def test_rules_shard_parameters_and_keep_the_function(run_on_devices):
    assert run_on_devices(SCRIPT, expect="mesh OK").count("mesh OK") == 2


STATE_SCRIPT = textwrap.dedent(
    """
    import jax
    import numpy as np
    import optax
    from jax.sharding import PartitionSpec as P

    from timesformer_jax.model import create_model
    from timesformer_jax.parallel import create_mesh
    from timesformer_jax.parallel.rules import LOGICAL_AXIS_RULES, rules_as_mapping, rules_from_mapping
    from timesformer_jax.train.state import StepConfig, create_train_state, make_train_step, state_shardings

    model = create_model("timesformer_tiny", num_frames=2, image_size=16, patch_size=8, num_classes=4)
    shape = (4, 2, 16, 16, 3)
    mesh = create_mesh({"data": 1, "fsdp": 2, "tensor": 2})
    schedule = optax.constant_schedule(0.1)
    # adamw: every moment is sharded as the parameter it mirrors, found by the tree's structure
    shardings, _ = state_shardings(model, optax.adamw(schedule), mesh, shape)
    mu = shardings.opt_state[0].mu
    assert jax.tree.structure(mu) == jax.tree.structure(shardings.params)
    for a, b in zip(jax.tree.leaves(mu), jax.tree.leaves(shardings.params)):
        assert a.spec == b.spec, (a, b)
    assert shardings.params["blocks_0"]["mlp"]["fc1"]["kernel"].spec == P("fsdp", "tensor")

    # adafactor keeps (1,)-shaped placeholders for unfactored parameters under their parameter's box: they are
    # replicated, and training runs sharded as it does on one device
    video = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    batch = {"video": video, "label": np.arange(4, dtype=np.int32) % 4}
    losses = []
    for mesh in (create_mesh({"data": 1}, devices=jax.devices()[:1]), mesh):
        optimizer = optax.adafactor(0.01)
        shardings, _ = state_shardings(model, optimizer, mesh, shape)
        state = create_train_state(model, optimizer, mesh, shape, seed=0, shardings=shardings)
        step = make_train_step(model, optimizer, schedule, mesh, shardings, StepConfig())
        for _ in range(2):
            state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)

    # the rules are data: a run that maps no logical name onto `tensor` shards nothing over it
    mapping = rules_as_mapping(LOGICAL_AXIS_RULES)
    assert rules_from_mapping(mapping) == LOGICAL_AXIS_RULES
    mapping.update(heads="", mlp="", classes="")
    shardings, _ = state_shardings(model, optax.sgd(0.1), mesh, shape, rules_from_mapping(mapping))
    assert all("tensor" not in str(s.spec) for s in jax.tree.leaves(shardings))
    print("state OK")
    """
)


@pytest.mark.slow
def test_state_shardings_come_from_the_parameter_boxes(run_on_devices):
    run_on_devices(STATE_SCRIPT, devices=4, expect="state OK")


def test_sharding_rules_are_config_fields_checked_by_name():
    from timesformer_jax.train.config import base_config, config_problems, sharding_rules

    config = base_config()
    assert dict(sharding_rules(config))["batch"] == ("data", "fsdp")
    config.sharding.rules.heads = "tensor,model"
    assert any("config.sharding.rules.heads is 'tensor,model'" in p for p in config_problems(config))
