"""Multi-head self-attention over groups of tokens (`Attention`), with the dense layers that name their logical
axes. Which tokens form a group is the scheme's business (`schemes.py`)."""
from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from timesformer_jax.model.splash import splash_attention

Dtype = jnp.dtype

dense_init = nn.initializers.truncated_normal(stddev=0.02)  # the official init of every Linear

# How the dense kernels (every Linear, the patch embedding, the head) start: "official" draws them from a
# truncated normal of std 0.02, as the official code and ViT do (widths of 768 and more, where a layer then
# starts with a gain of about 0.5); "fan_in" scales the std to 1/sqrt(fan in), so every layer starts with about
# unit gain at any width (at width 64 a std of 0.02 gives layers of gain 0.16: near-uniform attention, tiny
# branches). The stages' output projections (`<stage>_fc`), position embedding and cls token keep their own inits.
WEIGHT_INITS = ("official", "fan_in")


def kernel_init(weight_init: str, num_in: int = 1) -> Callable:
    """The initializer `weight_init` (WEIGHT_INITS) names for a kernel whose first `num_in` axes are its inputs."""
    if weight_init == "official":
        return dense_init
    if weight_init != "fan_in":
        raise ValueError(f"unknown weight_init {weight_init!r}; expected one of {WEIGHT_INITS}")

    def init(key, shape, dtype=jnp.float32):
        fan_in = math.prod(shape[:num_in])
        return nn.initializers.truncated_normal(stddev=1.0 / math.sqrt(fan_in))(key, shape, dtype)

    return init


class LogicalDense(nn.Module):
    """y = x . kernel + bias, contracting the last `num_in` axes of x; kernel (in..., features...).

    Parameters are created at their final rank with logical axis names. (Flax's `DenseGeneral` initialises a
    flattened 2-D kernel and reshapes it, which breaks rank-4 logical names under a mesh.)
    """

    features: int | tuple[int, ...]
    kernel_axes: tuple
    bias_axes: tuple
    num_in: int = 1
    use_bias: bool = True
    kernel_init: Callable = dense_init
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
            tuple(x.shape[-self.num_in :]) + features,
            self.param_dtype,
        )
        y = jnp.tensordot(x.astype(self.dtype), kernel.astype(self.dtype), axes=self.num_in)
        if self.use_bias:
            bias = self.param(
                "bias", nn.with_logical_partitioning(nn.initializers.zeros, self.bias_axes), features, self.param_dtype
            )
            y = y + bias.astype(self.dtype)
        return y


# What `attention_impl` may name (None picks per platform, `train.experiment`): jax.nn.dot_product_attention's
# XLA and cuDNN implementations, and the Pallas TPU splash kernel (`splash.py`).
ATTENTION_IMPLS = ("xla", "cudnn", "splash")


def local_platform() -> str:
    """This process's default JAX platform as kernels and `jax.export` name it: "cpu", "cuda", "rocm" or "tpu"."""
    device = jax.devices()[0]
    if device.platform == "gpu":
        return "rocm" if "rocm" in device.client.platform_version.lower() else "cuda"
    return device.platform


# cuDNN's fused attention trains only on even group lengths (jax's flash-attention check rejects the gradient
# of Q = KV = 197 or 1569); groups are padded to a multiple of this for it.
CUDNN_LENGTH_MULTIPLE = 8


def fused_attention(q: jax.Array, k: jax.Array, v: jax.Array, implementation: str | None,
                    splash_min_length: int = 0) -> jax.Array:
    """softmax(q k^T / sqrt(head_dim)) v by `jax.nn.dot_product_attention`, or by the splash kernel for "splash"
    (groups of `splash_min_length` tokens or more; shorter ones by XLA's attention); q, k, v, result:
    (G, L, heads, head_dim). For "cudnn", groups whose length is not a multiple of CUDNN_LENGTH_MULTIPLE are
    padded up to one (`padded_attention`), so every scheme's groups (197 tokens, 1569, 8, ...) train on the fused
    kernel."""
    if implementation == "splash":
        if q.shape[1] >= splash_min_length:
            return splash_attention(q, k, v)
        implementation = None
    if implementation == "cudnn" and q.shape[1] % CUDNN_LENGTH_MULTIPLE:
        return padded_attention(q, k, v, implementation, CUDNN_LENGTH_MULTIPLE)
    return jax.nn.dot_product_attention(q, k, v, implementation=implementation)


def padded_attention(q: jax.Array, k: jax.Array, v: jax.Array, implementation: str | None,
                     multiple: int) -> jax.Array:
    """Attention over groups padded with zeros to a length that is a multiple of `multiple`: the padded keys are
    masked out (`key_value_seq_lengths`), the padded queries' rows are dropped, so the result equals unpadded
    attention (up to the kernel's rounding). Shapes as `fused_attention`."""
    groups, length = q.shape[:2]
    padding = ((0, 0), (0, -length % multiple), (0, 0), (0, 0))
    lengths = jnp.full((groups,), length, jnp.int32)
    out = jax.nn.dot_product_attention(jnp.pad(q, padding), jnp.pad(k, padding), jnp.pad(v, padding),
                                       query_seq_lengths=lengths, key_value_seq_lengths=lengths,
                                       implementation=implementation)
    return out[:, :length]


def logical_dense(features, kernel_axes, bias_axes, name, dtype, param_dtype, **kwargs) -> LogicalDense:
    """Shorthand for `LogicalDense` with the model's dtypes."""
    return LogicalDense(features, kernel_axes, bias_axes, dtype=dtype, param_dtype=param_dtype, name=name, **kwargs)


class Attention(nn.Module):
    """Multi-head self-attention over groups of tokens, parameters laid out per head.

    x: (G, L, D) -> (G, L, D). `qkv` kernel is (D, 3, heads, head_dim) and `proj` kernel (heads, head_dim, D):
    the official fused `qkv` Linear reshaped, so heads can be sharded on their own mesh axis.
    """

    num_heads: int
    qkv_bias: bool = True
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    attention_impl: str | None = None  # None or one of ATTENTION_IMPLS
    splash_min_length: int = 0  # with "splash": shorter groups use XLA's attention
    weight_init: str = "official"  # one of WEIGHT_INITS
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True, capture_weights: bool = False) -> jax.Array:
        width = x.shape[-1]
        if width % self.num_heads:
            raise ValueError(f"expected width divisible by num_heads={self.num_heads}, got width {width}")
        head_dim = width // self.num_heads
        qkv = logical_dense(
            (3, self.num_heads, head_dim),
            ("embed", None, "heads", "kv"),
            (None, "heads", "kv"),
            "qkv",
            self.dtype,
            self.param_dtype,
            use_bias=self.qkv_bias,
            kernel_init=kernel_init(self.weight_init),
        )(x)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # each (G, L, heads, head_dim)
        use_dropout = self.attention_dropout_rate > 0.0 and not deterministic
        if capture_weights or use_dropout:
            # Explicit softmax: the fused kernel returns no weights and has no attention dropout.
            logits = jnp.einsum("gqhd,gkhd->ghqk", q, k) / jnp.sqrt(head_dim).astype(q.dtype)
            weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
            if capture_weights:
                self.sow("intermediates", "attention_weights", weights)
            weights = nn.Dropout(self.attention_dropout_rate)(weights, deterministic=deterministic)
            out = jnp.einsum("ghqk,gkhd->gqhd", weights.astype(v.dtype), v)
        else:
            out = fused_attention(q, k, v, self.attention_impl, self.splash_min_length)
        y = logical_dense(
            width, ("heads", "kv", "embed"), ("embed",), "proj", self.dtype, self.param_dtype, num_in=2,
            kernel_init=kernel_init(self.weight_init, num_in=2),
        )(out)
        return nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
