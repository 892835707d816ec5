"""The logical axis names shard parameters and activations on a device mesh (8 simulated CPU devices).

Runs in a subprocess because the device count is fixed when JAX's backend starts.
"""
import textwrap

import pytest

from timesformer_jax.model import ATTENTION_TYPES

SCRIPT = textwrap.dedent(
    """
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    from timesformer_jax.model import ATTENTION_TYPES, create_model

    assert jax.device_count() == 8, jax.devices()
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    rules = (("batch", "data"), ("heads", "model"), ("mlp", "model"), ("classes", "model"))
    video = jax.random.normal(jax.random.key(1), (8, 4, 32, 32, 3))
    for attention_type in ATTENTION_TYPES:
        model = create_model("timesformer_tiny", attention_type=attention_type)
        reference_vars = model.init(jax.random.key(0), video)
        reference = model.apply(reference_vars, video)
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            abstract = jax.eval_shape(model.init, jax.random.key(0), video)
            shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh, rules)
            variables = jax.jit(model.init, out_shardings=shardings)(jax.random.key(0), video)
            batch = jax.device_put(video, NamedSharding(mesh, P("data")))
            logits = jax.jit(model.apply)(variables, batch)
        params = nn.unbox(variables["params"])
        assert params["blocks_0"]["attn"]["qkv"]["kernel"].sharding.spec == P(None, None, "model", None)
        assert params["blocks_0"]["mlp"]["fc1"]["kernel"].sharding.spec == P(None, "model")
        assert params["head"]["kernel"].sharding.spec == P(None, "model")
        np.testing.assert_allclose(np.asarray(logits), np.asarray(reference), rtol=1e-5, atol=1e-5)
        print(attention_type, "sharded OK", logits.sharding.spec)
    """
)


@pytest.mark.slow
def test_logical_axes_shard_on_a_mesh(run_on_devices):
    assert run_on_devices(SCRIPT, expect="sharded OK").count("sharded OK") == len(ATTENTION_TYPES)
