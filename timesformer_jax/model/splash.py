"""Attention by the Pallas TPU splash kernel: memory linear in the group length (the scores are never stored).

q, k, v: (G, L, heads, head_dim) -> (G, L, heads, head_dim), as `jax.nn.dot_product_attention`. Groups are padded
to a multiple of the kernel's block (`splash_block`: 128 tokens, larger for very long groups) and the padding is
its own segment, so no real token attends to it and the padded rows are dropped. The kernel does not scale q;
it is scaled by 1/sqrt(head_dim) here.

A Mosaic kernel cannot be partitioned by the compiler, so under a mesh (`parallel.sharding_context`) the call runs
in `jax.shard_map`: groups split over the mesh axes the logical `batch` axis maps to, heads over those of
`heads` (each only where it divides). Lowered for TPU the kernel is compiled by Mosaic; lowered for anything else
(CPU tests, a CPU mesh) it runs in Pallas interpret mode: the same kernel, slowly. A model exported for TPU
(`jax.export`, platforms ("tpu",)) holds the kernel as a `tpu_custom_call`, which jax.export keeps stable; an
export for several platforms at once cannot hold it (the kernel has no CPU or GPU lowering).
"""
from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu import splash_attention as splash
from jax.sharding import PartitionSpec

SPLASH_BLOCK = 128  # the kernel's default block for queries and keys, forward and backward
# The kernel keeps per-block metadata, (L / block)^2 entries, in the TPU core's scalar memory (SMEM, 1 MiB):
# compiled for a v5p, 588 blocks of 128 per side (TimeSformer-HR joint attention at 96 x 448, 75,265 tokens)
# overflowed it ("Used 1.08M of 1.00M smem"), 295 (base joint at 192 x 224, 37,633 tokens) fit.
MAX_BLOCKS_PER_SIDE = 320


def splash_block(length: int) -> int:
    """The kernel's query and key block (forward and backward) for groups of `length` tokens: SPLASH_BLOCK,
    doubled until a group spans at most MAX_BLOCKS_PER_SIDE blocks."""
    block = SPLASH_BLOCK
    while -(-length // block) > MAX_BLOCKS_PER_SIDE:
        block *= 2
    return block


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """softmax(q k^T / sqrt(head_dim)) v over each group by the splash kernel. Shapes in the module docstring."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or math.prod(mesh.shape.values()) == 1:
        return _splash_per_platform(q, k, v)
    groups_axes = _dividing_axes("batch", q.shape[0], mesh)
    heads_axes = _dividing_axes("heads", q.shape[2], mesh)
    spec = PartitionSpec(groups_axes, None, heads_axes, None)
    sharded = jax.shard_map(_splash_per_platform, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec,
                            check_vma=False)
    return sharded(q, k, v)


def _splash_per_platform(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """The kernel compiled by Mosaic when lowered for TPU, interpreted when lowered for anything else (decided
    per lowering platform, so a CPU machine compiling for a TPU slice, or exporting for TPU, gets the kernel)."""
    return jax.lax.platform_dependent(q, k, v, tpu=functools.partial(_padded_splash, interpret=False),
                                      default=functools.partial(_padded_splash, interpret=True))


def _dividing_axes(logical: str, size: int, mesh) -> tuple[str, ...] | None:
    """The mesh axes the rules map `logical` to, when their product divides `size` (else None: replicated)."""
    axes = nn.logical_to_mesh_axes((logical,))[0]
    if axes is None:
        return None
    axes = (axes,) if isinstance(axes, str) else tuple(axes)
    return axes if size % math.prod(mesh.shape[a] for a in axes) == 0 else None


def _padded_splash(q: jax.Array, k: jax.Array, v: jax.Array, interpret: bool) -> jax.Array:
    """The kernel on one shard: (G, L, heads, head_dim) in and out, L padded to a multiple of its block."""
    groups, length, heads, head_dim = q.shape
    block = splash_block(length)
    padded = length + (-length % block)
    blocks = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block, block_q_dkv=block,
                               block_kv_dkv=block, block_kv_dkv_compute=block, block_q_dq=block, block_kv_dq=block)

    def heads_first(x):  # (G, L, h, d) -> (G, h, Lp, d)
        return jnp.pad(x, ((0, 0), (0, padded - length), (0, 0), (0, 0))).transpose(0, 2, 1, 3)

    kernel = splash.make_splash_mha(splash.MultiHeadMask([splash.FullMask((padded, padded))] * heads),
                                    block_sizes=blocks, head_shards=1, q_seq_shards=1, interpret=interpret)
    segment = jnp.broadcast_to((jnp.arange(padded) >= length).astype(jnp.int32), (groups, padded))
    scaled_q = q * jnp.asarray(1 / math.sqrt(head_dim), q.dtype)
    out = jax.vmap(kernel)(heads_first(scaled_q), heads_first(k), heads_first(v),
                           segment_ids=splash.SegmentIds(q=segment, kv=segment))
    return out.transpose(0, 2, 1, 3)[:, :length]
