"""Device meshes and the rules that map the model's logical axis names onto them."""
from timesformer_jax.parallel.batches import global_batch
from timesformer_jax.parallel.mesh import MESH_AXES, create_mesh, resolve_mesh_shape
from timesformer_jax.parallel.rules import (LOGICAL_AXIS_RULES, IndivisibleDimensionError, batch_sharding,
                                           logical_shardings, sharding_context, with_shardings)

__all__ = [
    "LOGICAL_AXIS_RULES",
    "IndivisibleDimensionError",
    "MESH_AXES",
    "batch_sharding",
    "create_mesh",
    "global_batch",
    "logical_shardings",
    "resolve_mesh_shape",
    "sharding_context",
    "with_shardings",
]
