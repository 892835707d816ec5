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
    from timesformer_jax.parallel import LOGICAL_AXIS_RULES, batch_sharding, create_mesh, param_shardings

    video = np.random.default_rng(0).normal(size=(8, 4, 32, 32, 3)).astype(np.float32)
    model = create_model("timesformer_tiny")  # 2 heads, MLP 128, width 64
    reference = model.apply(model.init(jax.random.key(0), video), video)
    for sizes in ({"data": -1, "fsdp": 2, "tensor": 2}, {"data": 2, "tensor": 4}):
        mesh = create_mesh(sizes)
        abstract = jax.eval_shape(model.init, jax.random.key(0), video)
        shardings = param_shardings(abstract, mesh)
        with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
            variables = jax.jit(model.init, out_shardings=shardings)(jax.random.key(0), video)
            logits = jax.jit(model.apply)(variables, jax.device_put(video, batch_sharding(mesh)))
        params = nn.unbox(variables["params"])
        qkv = params["blocks_0"]["attn"]["qkv"]["kernel"].sharding.spec
        fc1 = params["blocks_0"]["mlp"]["fc1"]["kernel"].sharding.spec
        print(dict(mesh.shape), "qkv", qkv, "fc1", fc1)
        if mesh.shape["tensor"] == 2:
            assert qkv == P("fsdp", None, "tensor", None) and fc1 == P("fsdp", "tensor"), (qkv, fc1)
        else:  # 2 heads cannot split over tensor=4: replicated; the MLP still splits
            assert qkv == P("fsdp", None, None, None) and fc1 == P("fsdp", "tensor"), (qkv, fc1)  # fsdp has size 1
        np.testing.assert_allclose(np.asarray(logits), np.asarray(reference), rtol=1e-5, atol=1e-5)
        print("mesh OK")
    """
)


@pytest.mark.slow
def test_rules_shard_parameters_and_keep_the_function(run_on_devices):
    assert run_on_devices(SCRIPT, expect="mesh OK").count("mesh OK") == 2
