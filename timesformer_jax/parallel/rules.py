"""Logical axis names -> mesh axes, and the shardings they give parameters and batches.

The model names every parameter dimension (`embed`, `mlp`, `heads`, `kv`, `classes`, `tokens`, `frames`) and
constrains activations on `batch` (and `act_embed`, the width of activations). The table below is the one
place that decides the parallelism:

* `batch` over `data` and `fsdp`: plain data parallelism, and the batch half of FSDP;
* `embed` over `fsdp`: every weight matrix is sharded along its model width, gathered when used (ZeRO-3 style);
* `heads`, `mlp`, `classes` over `tensor`: Megatron-style tensor parallelism of attention heads and MLPs;
* the rest replicated.

The table is the default of a run's `config.sharding.rules` (a mapping, `rules_as_mapping`); a run may change
any entry. Every state leaf's sharding
comes from the logical names its `nn.Partitioned` box carries (parameters, and the optimizer moments that
`optax` builds from the boxed parameters keep those boxes): nothing is matched by key names. A dimension that
its mesh axes do not divide (e.g. 3 heads over tensor=2) is an error naming the parameter, the axes and the mesh,
unless the run opts into replicating it (`config.sharding.replicate_indivisible`).
"""
from __future__ import annotations

import contextlib
import math

import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from timesformer_jax.parallel.mesh import MESH_AXES

LOGICAL_AXIS_RULES = (  # the default rules (config.sharding.rules)
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


def rules_as_mapping(rules) -> dict[str, str]:
    """{"batch": "data,fsdp", "embed": "fsdp", "kv": "", ...}: rules as config data (each entry a field that a
    command line can set: `--config.sharding.rules.heads=`), mesh axes joined by commas, "" for replicated."""
    def axes(entry):
        return "" if entry is None else entry if isinstance(entry, str) else ",".join(entry)

    return {name: axes(entry) for name, entry in rules}


def rules_from_mapping(mapping, source: str = "config.sharding.rules") -> tuple:
    """The rules `rules_as_mapping` wrote, back as flax's ((logical name, mesh axes), ...). ValueError naming the
    entry when it names an axis the mesh does not have."""
    rules = []
    for name, value in dict(mapping).items():
        axes = tuple(a.strip() for a in str(value or "").split(",") if a.strip())
        unknown = [a for a in axes if a not in MESH_AXES]
        if unknown:
            raise ValueError(f"{source}.{name} is {value!r}: {unknown} not mesh axes; expected comma-separated "
                             f"axes of {MESH_AXES}, or empty for replicated")
        rules.append((name, None if not axes else axes[0] if len(axes) == 1 else axes))
    return tuple(rules)


class IndivisibleDimensionError(ValueError):
    """A parameter dimension that the mesh axes its logical name maps to do not divide."""


def _fit(spec: PartitionSpec, shape: tuple[int, ...], mesh: Mesh, name: str, replicate_indivisible: bool,
         logical: tuple) -> PartitionSpec:
    """`spec`, checked against `shape`: an entry whose mesh axes do not divide its dimension raises
    IndivisibleDimensionError, or is replaced by None (replicated) when `replicate_indivisible`."""
    entries = []
    for index, (dim, entry) in enumerate(zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec)))):
        axes = (entry,) if isinstance(entry, str) else tuple(entry or ())
        size = math.prod(mesh.shape[a] for a in axes)
        if size > 1 and dim % size:
            if not replicate_indivisible:
                logical_name = logical[index] if index < len(logical) else None
                raise IndivisibleDimensionError(
                    f"{name} {tuple(shape)}: dimension {index} ({dim}, logical axis {logical_name!r}) is not "
                    f"divisible by mesh axes {axes} of size {size} (mesh {dict(mesh.shape)}). Change the mesh, the "
                    "model or config.sharding.rules, or set config.sharding.replicate_indivisible=True to "
                    "replicate such dimensions")
            entry = None
        entries.append(entry)
    return PartitionSpec(*entries)


def logical_shardings(abstract_tree, mesh: Mesh, rules=LOGICAL_AXIS_RULES, replicate_indivisible: bool = False):
    """NamedShardings for an abstract tree (from `jax.eval_shape`) whose leaves are `nn.Partitioned` boxes of
    logical names or plain arrays (replicated): parameters, or a whole train state whose optimizer moments carry
    their parameters' boxes. The returned tree has the unboxed tree's structure. A box whose names do not match
    its leaf's rank (a statistic reduced over a parameter's dimensions) is replicated."""
    boxed = lambda x: isinstance(x, nn.Partitioned)  # noqa: E731

    def sharding(path, leaf):
        if not boxed(leaf) or len(leaf.names) != len(leaf.value.shape):
            return NamedSharding(mesh, PartitionSpec())
        spec = nn.logical_to_mesh_axes(leaf.names, rules)
        return NamedSharding(mesh, _fit(spec, leaf.value.shape, mesh, _param_name(path), replicate_indivisible,
                                        tuple(leaf.names)))

    return jax.tree_util.tree_map_with_path(sharding, abstract_tree, is_leaf=boxed)


def _param_name(path) -> str:
    """"opt_state[0].mu['blocks_0']['attn']['qkv']['kernel']": the key path, without the boxes' `.value`."""
    return jax.tree_util.keystr(path).replace(".value", "")


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
