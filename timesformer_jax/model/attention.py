"""Multi-head self-attention and the five space-time attention schemes of TimeSformer.

Every scheme is a sequence of *stages*. A stage regroups the token grid `(B, T, H, W, D)` (T frames, an H x W
patch grid) into independent groups `(B * G, L, D)`, runs self-attention inside each group, and ungroups. Schemes
differ only in how they group tokens, so adding a scheme means adding one `Scheme` entry to `SCHEMES`: the
model, the FLOP formula, checkpoint detection and the benchmark read everything from it.

Reading of the paper (Bertasius et al. 2021, Section 3 and Table 1) and of the official code:

* `space_only` (S): attention among the patches of one frame. The official model runs the whole network per
  frame, each frame with its own cls token, and averages over frames before the final norm; the model does that
  by folding frames into the batch, so the scheme is one spatial stage over a single-frame grid.
* `joint_space_time` (ST): one stage over all T*H*W patches plus the cls token.
* `divided_space_time` (T+S): a temporal stage (each patch location attends over the T frames; own LayerNorm
  `temporal_norm1`, attention `temporal_attn` and output projection `temporal_fc`, no cls token), then a
  spatial stage (each frame's H*W patches plus a copy of the cls token; the per-frame cls outputs are averaged).
* `sparse_local_global` (L+G): "first computes a local attention by considering the neighboring F x H/2 x W/2
  patches and then calculates a sparse global attention over the entire clip using a stride of 2 patches along
  the temporal dimension and also the two spatial dimensions". We read the local neighbourhood as the four
  non-overlapping H/2 x W/2 spatial windows, each spanning all F frames (`local_*` parameters, like the temporal
  stage of T+S), and the sparse global attention as strided (dilated) groups: tokens whose (t, h, w) share the
  same parities form one group of T/2 * H/2 * W/2 tokens spread over the whole clip, plus a copy of the cls
  token per group (averaged, as T+S does per frame). A window holds every parity class, so after one block
  every token has a path to every other one, as in the Sparse Transformer the paper cites. Requires even T, H, W.
  Table 1 gives L+G the parameter count of T+S (121.4M): two attention sets, as here.
* `axial` (T+W+H): attention along time (`temporal_*`), then width (`width_*`: each row of a frame), then
  height (each column of a frame, with the cls token, using the ViT attention `norm1`/`attn`). Three attention
  sets, matching Table 1's 156.3M.

The stage that carries the cls token always uses the ViT names `norm1`/`attn`, so ImageNet ViT weights map onto
it directly; every other stage has `<name>_norm1`, `<name>_attn` and `<name>_fc` as the official temporal
stage does.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = jnp.dtype

dense_init = nn.initializers.truncated_normal(stddev=0.02)  # the official init of every Linear


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


# cuDNN's fused attention trains only on even group lengths (jax's flash-attention check rejects the gradient
# of Q = KV = 197 or 1569); groups are padded to a multiple of this for it.
CUDNN_LENGTH_MULTIPLE = 8


def fused_attention(q: jax.Array, k: jax.Array, v: jax.Array, implementation: str | None) -> jax.Array:
    """softmax(q k^T / sqrt(head_dim)) v by `jax.nn.dot_product_attention`; q, k, v, result: (G, L, heads,
    head_dim). For "cudnn", groups whose length is not a multiple of CUDNN_LENGTH_MULTIPLE are padded up to one
    (`padded_attention`), so every scheme's groups (197 tokens, 1569, 8, ...) train on the fused kernel."""
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
    attention_impl: str | None = None  # jax.nn.dot_product_attention implementation: None, "xla", "cudnn"
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
            out = fused_attention(q, k, v, self.attention_impl)
        y = logical_dense(
            width, ("heads", "kv", "embed"), ("embed",), "proj", self.dtype, self.param_dtype, num_in=2
        )(out)
        return nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)


@dataclasses.dataclass(frozen=True)
class Grouping:
    """A regrouping of the token grid into independent attention groups, written as an einops pattern.

    `pattern` maps `b t h w d` (possibly split as `(t s)`, `(h i)`, `(w j)` or `(i h)`, `(j w)`) to
    `(b ...) L d`; the batch is outermost in the group axis, so group index = b * G + g. `splits` gives the
    factor named `s` (frames), `i` (height) and `j` (width) where the pattern uses them.
    """

    pattern: str
    splits: tuple[tuple[str, int], ...] = ()

    def check(self, grid_shape: tuple[int, ...]) -> None:
        _, t, h, w, _ = grid_shape
        sizes = {"s": t, "i": h, "j": w}
        for name, factor in self.splits:
            if sizes[name] % factor:
                axis = {"s": "frame count", "i": "patch-grid height", "j": "patch-grid width"}[name]
                raise ValueError(
                    f"attention grouping '{self.pattern}' needs a {axis} divisible by {factor}; "
                    f"got a token grid (B, T, H, W, D) = {tuple(grid_shape)}"
                )

    def split(self, grid: jax.Array) -> jax.Array:
        """grid: (B, T, H, W, D) -> groups (B * G, L, D)."""
        return einops.rearrange(grid, self.pattern, **dict(self.splits))

    def merge(self, groups: jax.Array, grid_shape: tuple[int, ...]) -> jax.Array:
        """groups: (B * G, L, D) -> grid (B, T, H, W, D)."""
        b, t, h, w, _ = grid_shape
        factors = dict(self.splits)
        lengths = {
            "b": b,
            "t": t // factors.get("s", 1),
            "h": h // factors.get("i", 1),
            "w": w // factors.get("j", 1),
            **factors,
        }
        src, dst = self.pattern.split("->")
        used = set(re.findall(r"[a-z]+", src))
        return einops.rearrange(groups, f"{dst} -> {src}", **{k: v for k, v in lengths.items() if k in used})


TIME = Grouping("b t h w d -> (b h w) t d")
SPACE = Grouping("b t h w d -> (b t) (h w) d")
JOINT = Grouping("b t h w d -> b (h w t) d")
LOCAL_WINDOWS = Grouping("b t (i h) (j w) d -> (b i j) (t h w) d", (("i", 2), ("j", 2)))
STRIDED_GLOBAL = Grouping("b (t s) (h i) (w j) d -> (b s i j) (t h w) d", (("s", 2), ("i", 2), ("j", 2)))
WIDTH = Grouping("b t h w d -> (b t h) w d")
HEIGHT = Grouping("b t h w d -> (b t w) h d")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One attention step of a block: a grouping, and whether it carries the cls token.

    The cls-carrying stage uses the ViT parameter names (`norm1`, `attn`) and no output projection after the
    residual branch; any other stage is named `<name>_norm1`, `<name>_attn`, `<name>_fc`.
    """

    name: str
    grouping: Grouping
    with_cls: bool

    @property
    def parameter_prefix(self) -> str | None:
        """`<name>_` for a stage with its own parameters, None for the cls stage (which has the ViT's)."""
        return None if self.with_cls else f"{self.name}_"


@dataclasses.dataclass(frozen=True)
class StageLayout:
    """One stage of one block over one video: `groups` attention groups of `length` tokens (cls copies included)."""

    name: str
    groups: int
    length: int
    output_fc: bool  # a stage without the cls token has its own output projection (`<name>_fc`)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """Everything that defines an attention scheme; the model, the FLOP formula, checkpoint detection, the
    benchmark's feasibility check and the tests all derive from it.

    stages: the block's attention stages, in order; exactly one carries the cls token.
    frames_in_batch: every frame is its own image (its own cls token, no time embedding, frames averaged before
        the final norm), as the official space-only model runs; the stages then see single-frame grids.
    official: the official PyTorch TimeSformer (and its Hugging Face port) implements the scheme, so it is
        checked against that reference.
    """

    stages: tuple[Stage, ...]
    frames_in_batch: bool = False
    official: bool = False

    def __post_init__(self):
        if sum(stage.with_cls for stage in self.stages) != 1:
            raise ValueError(f"a scheme needs exactly one stage with the cls token; got stages {self.stages}")

    @property
    def uses_time_embed(self) -> bool:
        return not self.frames_in_batch

    @property
    def parameter_prefixes(self) -> tuple[str, ...]:
        """Prefixes of the stages' own parameters in a block (`temporal_`, ...): how checkpoints reveal the scheme."""
        return tuple(stage.parameter_prefix for stage in self.stages if stage.parameter_prefix)

    def token_grid(self, batch: int, frames: int, grid_h: int, grid_w: int, width: int) -> tuple[int, ...]:
        """The (B, T, H, W, D) grid the stages see for `batch` clips of `frames` frames."""
        if self.frames_in_batch:
            return (batch * frames, 1, grid_h, grid_w, width)
        return (batch, frames, grid_h, grid_w, width)

    def check(self, frames: int, grid_h: int, grid_w: int) -> None:
        """ValueError naming the grid when a stage cannot group a clip of `frames` frames on this patch grid."""
        for stage in self.stages:
            stage.grouping.check(self.token_grid(1, frames, grid_h, grid_w, 1))

    def layouts(self, frames: int, grid_h: int, grid_w: int) -> tuple[StageLayout, ...]:
        """Group count and length of every stage for one clip, read off the stages' own groupings."""
        self.check(frames, grid_h, grid_w)
        grid = np.empty(self.token_grid(1, frames, grid_h, grid_w, 1), np.bool_)
        out = []
        for stage in self.stages:
            groups, length, _ = stage.grouping.split(grid).shape
            out.append(StageLayout(stage.name, groups, length + stage.with_cls, not stage.with_cls))
        return tuple(out)

    def tokens_attended(self, frames: int, grid_h: int, grid_w: int) -> int:
        """Keys each patch query attends to per block, summed over the stages (cls copies included)."""
        return sum(layout.length for layout in self.layouts(frames, grid_h, grid_w))

    def cls_tokens(self, frames: int) -> int:
        """cls tokens per clip: one, or one per frame when frames are separate images."""
        return frames if self.frames_in_batch else 1


SCHEMES: dict[str, Scheme] = {
    "divided_space_time": Scheme((Stage("temporal", TIME, False), Stage("spatial", SPACE, True)), official=True),
    "joint_space_time": Scheme((Stage("joint", JOINT, True),), official=True),
    "space_only": Scheme((Stage("spatial", SPACE, True),), frames_in_batch=True, official=True),
    "sparse_local_global": Scheme((Stage("local", LOCAL_WINDOWS, False), Stage("global", STRIDED_GLOBAL, True))),
    "axial": Scheme((Stage("temporal", TIME, False), Stage("width", WIDTH, False), Stage("height", HEIGHT, True))),
}

ATTENTION_TYPES = tuple(SCHEMES)  # the built-in schemes, in the paper's order
REFERENCE_SCHEMES = tuple(name for name, scheme in SCHEMES.items() if scheme.official)


def get_scheme(attention_type: str) -> Scheme:
    """The registered scheme `attention_type`; ValueError naming the known ones otherwise."""
    if attention_type not in SCHEMES:
        raise ValueError(f"unknown attention_type {attention_type!r}; expected one of {tuple(SCHEMES)}")
    return SCHEMES[attention_type]


def stage_parameter_prefixes() -> frozenset[str]:
    """Every registered scheme's stage prefixes: what marks a checkpoint as a video model."""
    return frozenset(p for scheme in SCHEMES.values() for p in scheme.parameter_prefixes)


def scheme_of_parameters(prefixes: set[str], has_time_embed: bool) -> str:
    """The scheme whose blocks have exactly the stage parameters `prefixes` (e.g. {'temporal_'}) and whose
    model has a time embedding iff `has_time_embed`: how a checkpoint's tensors name its scheme."""
    matches = [name for name, scheme in SCHEMES.items()
               if set(scheme.parameter_prefixes) == set(prefixes) and scheme.uses_time_embed == has_time_embed]
    if len(matches) != 1:
        known = {name: (scheme.parameter_prefixes, scheme.uses_time_embed) for name, scheme in SCHEMES.items()}
        raise ValueError(
            f"no single attention scheme has block parameters {sorted(prefixes)} and "
            f"{'a' if has_time_embed else 'no'} time embedding (matches: {matches}); schemes (stage prefixes, "
            f"time embedding): {known}"
        )
    return matches[0]
