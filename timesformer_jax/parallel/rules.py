"""Logical axis names -> mesh axes, and the shardings they give parameters and batches.

The model names every parameter dimension (`embed`, `mlp`, `heads`, `kv`, `classes`, `tokens`, `frames`) and
constrains activations on `batch` (and `act_embed`, the width of activations). The table below is the one
place that decides the parallelism:

* `batch` over `data` and `fsdp`: plain data parallelism, and the batch half of FSDP;
* `embed` over `fsdp`: every weight matrix is sharded along its model width, gathered when used (ZeRO-3 style);
* `heads`, `mlp`, `classes` over `tensor`: Megatron-style tensor parallelism of attention heads and MLPs;
* the rest replicated.

A dimension that the mesh axes do not divide (e.g. 3 heads over tensor=2) is left replicated instead of
failing, and reported.
"""
from __future__ import annotations

import contextlib
import logging
import math

import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

logger = logging.getLogger(__name__)

LOGICAL_AXIS_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("classes", "tensor"),
    ("kv", None),
    ("tokens", None),
    ("frames", None),
    ("act_embed", None),
)


def _fit(spec: PartitionSpec, shape: tuple[int, ...], mesh: Mesh, name: str) -> PartitionSpec:
    """`spec` with every entry whose mesh axes do not divide the dimension replaced by None."""
    entries = []
    for dim, entry in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        axes = (entry,) if isinstance(entry, str) else tuple(entry or ())
        size = math.prod(mesh.shape[a] for a in axes)
        if size > 1 and dim % size:
            logger.info("%s: dimension %d is not divisible by mesh axes %s (%d); replicated", name, dim, axes, size)
            entry = None
        entries.append(entry)
    return PartitionSpec(*entries)


def param_shardings(abstract_variables, mesh: Mesh, rules=LOGICAL_AXIS_RULES):
    """NamedShardings for a (boxed, abstract) variable tree from `jax.eval_shape(model.init, ...)`, by rules."""
    specs = nn.get_partition_spec(abstract_variables)
    mesh_specs = nn.logical_to_mesh(specs, rules)
    unboxed = nn.unbox(abstract_variables)

    def sharding(path, spec, leaf):
        return NamedSharding(mesh, _fit(spec, leaf.shape, mesh, jax.tree_util.keystr(path)))

    return jax.tree_util.tree_map_with_path(
        sharding, mesh_specs, unboxed, is_leaf=lambda x: isinstance(x, PartitionSpec)
    )


def with_shardings(abstract, shardings):
    """`jax.ShapeDtypeStruct`s of the `abstract` tree's shapes and dtypes, placed on the matching `shardings`: the
    target of a sharded restore, or arguments to lower a jitted step without allocating anything."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension over `data` and `fsdp`, everything else replicated."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


@contextlib.contextmanager
def sharding_context(mesh: Mesh, rules=LOGICAL_AXIS_RULES):
    """The mesh and the logical rules the model's constraints resolve against: enter it around every jitted
    call, lowering and initialisation of the model (without it, `with_logical_constraint` silently does nothing)."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield
