"""A device mesh with axes `data` (batch), `fsdp` (batch and parameter shards) and `tensor` (heads / MLP).

Sizes come from the config; one of them may be -1 for "all remaining devices", so the same config runs on one
CPU, eight simulated devices, a GPU or a TPU pod. Axis types are Auto: Flax Linen's logical constraints need it
(with the Explicit default of `jax.make_mesh` they fail as assertions).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import jax
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

MESH_AXES = ("data", "fsdp", "tensor")


def resolve_mesh_shape(axis_sizes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Sizes for MESH_AXES from `axis_sizes` (missing axes are 1; at most one -1 takes the remaining devices)."""
    unknown = sorted(set(axis_sizes) - set(MESH_AXES))
    if unknown:
        raise ValueError(f"unknown mesh axes {unknown}; expected some of {MESH_AXES}")
    sizes = [int(axis_sizes.get(axis, 1)) for axis in MESH_AXES]
    free = [i for i, s in enumerate(sizes) if s == -1]
    if len(free) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"mesh sizes must be positive, with at most one -1; got {dict(zip(MESH_AXES, sizes))}")
    fixed = math.prod(s for s in sizes if s != -1)
    if free:
        if num_devices % fixed:
            raise ValueError(
                f"cannot fill mesh {dict(zip(MESH_AXES, sizes))}: {num_devices} devices are not a multiple of {fixed}"
            )
        sizes[free[0]] = num_devices // fixed
    if math.prod(sizes) != num_devices:
        raise ValueError(
            f"mesh {dict(zip(MESH_AXES, sizes))} has {math.prod(sizes)} devices, but {num_devices} are available"
        )
    return tuple(sizes)


def create_mesh(axis_sizes: Mapping[str, int] | None = None, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over `devices` (default: all, every host) with axes MESH_AXES; default all devices on `data`."""
    devices = list(devices if devices is not None else jax.devices())
    shape = resolve_mesh_shape(axis_sizes or {"data": -1}, len(devices))
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    try:
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
    except (ValueError, NotImplementedError):
        # A TPU slice lays logical axes on whole physical axes (4x4x8: sizes 4, 8, 16, ...); an axis of 2 there
        # needs a physical axis split in two, which mesh_utils does when asked.
        grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
        return Mesh(grid, MESH_AXES, axis_types=axis_types)
