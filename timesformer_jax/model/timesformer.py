"""TimeSformer in Flax Linen: patch embedding, space-time blocks, classifier.

Reading order: `DropPath`, `Mlp`, `Block` (composes the attention stages of a scheme, see `attention.py`),
`TimeSformer`. Module and parameter names follow the official checkpoint (`patch_embed`, `cls_token`,
`pos_embed`, `time_embed`, `blocks_{i}/{norm1, attn, temporal_norm1, temporal_attn, temporal_fc, norm2, mlp}`,
`norm`, `head`), so converting a checkpoint is a rename plus a transpose.

Internally the patch tokens are a grid `(B, T, H, W, D)` and the cls token is `(B, D)`; the official flat
sequence `(B, 1 + H*W*T, D)` orders tokens space-major/time-minor, which only matters for conversion of the
position embedding (row-major over the patch grid) and is handled there.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from timesformer_jax.model.attention import Attention, dense_init, kernel_init, logical_dense
from timesformer_jax.model.schemes import Scheme, Stage, get_scheme
from timesformer_jax.model.embeddings import resize_pos_embed, resize_time_embed

Dtype = Any

GRID_AXES = ("batch", None, None, None, "act_embed")  # (B, T, H, W, D): shard the batch only, so
GROUP_AXES = ("batch", None, "act_embed")  # regrouping for attention never reshards frames or patches.
CLS_AXES = ("batch", "act_embed")


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per example.

    branch: an array or a tuple of arrays, each (B, ...). One keep/drop draw per example is shared by all of
    them, so the cls token and the patch tokens of a clip are dropped together, as in the official flat sequence.
    """

    rate: float | jax.Array  # an array inside scanned blocks (`scan_blocks`), where each block has its own rate

    @nn.compact
    def __call__(self, branch, deterministic: bool):
        if deterministic or (isinstance(self.rate, (int, float)) and self.rate == 0.0):
            return branch
        keep = 1.0 - self.rate
        batch = jax.tree.leaves(branch)[0].shape[0]
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (batch,))

        def apply(x):
            return jnp.where(mask.reshape((batch,) + (1,) * (x.ndim - 1)), x / keep, jnp.zeros_like(x))

        return jax.tree.map(apply, branch)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> dropout -> fc2 -> dropout. x: (..., D) -> (..., D)."""

    mlp_dim: int
    dropout_rate: float = 0.0
    weight_init: str = "official"  # attention.WEIGHT_INITS
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        width = x.shape[-1]
        init = kernel_init(self.weight_init)
        x = logical_dense(self.mlp_dim, ("embed", "mlp"), ("mlp",), "fc1", self.dtype, self.param_dtype,
                          kernel_init=init)(x)
        x = nn.gelu(x, approximate=False)
        x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        x = logical_dense(width, ("mlp", "embed"), ("embed",), "fc2", self.dtype, self.param_dtype,
                          kernel_init=init)(x)
        return nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)


def _layer_norm(name: str, eps: float, dtype: Dtype, param_dtype: Dtype) -> nn.LayerNorm:
    return nn.LayerNorm(
        epsilon=eps,
        dtype=dtype,
        param_dtype=param_dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
        name=name,
    )


class Block(nn.Module):
    """One TimeSformer block: the scheme's attention stages in order, then the MLP.

    cls: (B, D), grid: (B, T, H, W, D) -> the same shapes. A stage without the cls token adds
    `<name>_fc(drop_path(<name>_attn(<name>_norm1(x))))` to the patch tokens (the official temporal branch).
    The cls-carrying stage appends a copy of cls to every group, adds `drop_path(attn(norm1(x)))` to the patch
    tokens and the group-mean of the cls outputs to cls (the official per-frame cls averaging).
    """

    attention_type: str
    num_heads: int
    mlp_dim: int
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    drop_path_rate: float = 0.0
    attention_impl: str | None = None
    splash_min_length: int = 0
    stage_fc_init_std: float = 0.0
    weight_init: str = "official"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def _norm(self, name: str) -> nn.LayerNorm:
        return _layer_norm(name, self.layer_norm_eps, self.dtype, self.param_dtype)

    def _attention(self, name: str) -> Attention:
        return Attention(
            num_heads=self.num_heads,
            qkv_bias=self.qkv_bias,
            dropout_rate=self.dropout_rate,
            attention_dropout_rate=self.attention_dropout_rate,
            attention_impl=self.attention_impl,
            splash_min_length=self.splash_min_length,
            weight_init=self.weight_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name=name,
        )

    def _stage(self, stage: Stage, cls, grid, drop_path, deterministic, capture_attention):
        batch, width = grid.shape[0], grid.shape[-1]
        groups = nn.with_logical_constraint(stage.grouping.split(grid), GROUP_AXES)
        num_groups = groups.shape[0] // batch
        if not stage.with_cls:
            y = self._attention(f"{stage.name}_attn")(
                self._norm(f"{stage.name}_norm1")(groups), deterministic, capture_attention
            )
            y = drop_path(stage.grouping.merge(y, grid.shape), deterministic)
            fc = logical_dense(
                width, (None, "embed"), ("embed",), f"{stage.name}_fc", self.dtype, self.param_dtype,
                kernel_init=_normal_or_zeros(self.stage_fc_init_std),
            )
            y = fc(y)
            return cls, grid + y
        cls_copies = jnp.broadcast_to(cls[:, None, None], (batch, num_groups, 1, width))
        groups = jnp.concatenate([cls_copies.reshape(batch * num_groups, 1, width), groups], axis=1)
        y = self._attention("attn")(self._norm("norm1")(groups), deterministic, capture_attention)
        cls_delta = y[:, 0].reshape(batch, num_groups, width).mean(axis=1)
        patch_delta = stage.grouping.merge(y[:, 1:], grid.shape)
        cls_delta, patch_delta = drop_path((cls_delta, patch_delta), deterministic)
        return cls + cls_delta, grid + patch_delta

    @nn.compact
    def __call__(self, cls: jax.Array, grid: jax.Array, deterministic: bool = True, capture_attention: bool = False,
                 drop_path_rate: jax.Array | None = None):
        """`drop_path_rate` (an array) replaces the field's rate: scanned blocks share their fields."""
        drop_path = DropPath(self.drop_path_rate if drop_path_rate is None else drop_path_rate)
        for stage in get_scheme(self.attention_type).stages:
            stage.grouping.check(grid.shape)
            cls, grid = self._stage(stage, cls, grid, drop_path, deterministic, capture_attention)
            grid = nn.with_logical_constraint(grid, GRID_AXES)
        norm2 = self._norm("norm2")
        mlp = Mlp(self.mlp_dim, self.dropout_rate, self.weight_init, self.dtype, self.param_dtype, name="mlp")
        # The MLP is per token: apply it to the cls token and the grid separately instead of concatenating.
        cls_delta, grid_delta = drop_path((mlp(norm2(cls), deterministic), mlp(norm2(grid), deterministic)), deterministic)
        cls, grid = cls + cls_delta, grid + grid_delta
        cls = nn.with_logical_constraint(cls, CLS_AXES)
        grid = nn.with_logical_constraint(grid, GRID_AXES)
        self.sow("intermediates", "cls", cls)
        self.sow("intermediates", "tokens", grid)
        return cls, grid


class TimeSformer(nn.Module):
    """TimeSformer video classifier.

    video: (B, T, H, W, C) float, channels last, already normalised -> logits (B, num_classes) float32
    (or pre-logit features (B, hidden_size) when num_classes == 0).

    H and W must be divisible by `patch_size`. A clip with another patch grid or frame count than
    `image_size`/`num_frames` gets nearest-resized position/time embeddings as the official forward does,
    unless `resize_embeddings=False`, which makes that an error. With `model.apply(..., mutable="intermediates")`
    each block sows its output (`blocks_{i}/cls` (B, D), `blocks_{i}/tokens` (B, T, H/p, W/p, D)) and the model
    sows `pre_logits`; `capture_attention=True` also sows every attention's weights (G, heads, L, L).
    """

    num_classes: int = 400
    attention_type: str = "divided_space_time"
    image_size: int | tuple[int, int] = 224
    num_frames: int = 8
    patch_size: int = 16
    in_channels: int = 3
    hidden_size: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    drop_path_rate: float = 0.0
    resize_embeddings: bool = True
    remat: bool = False
    remat_policy: str = "nothing"  # what remat keeps from the forward pass: a REMAT_POLICIES name
    # The blocks as one `nn.scan` (one compiled block instead of `depth`): parameters and intermediates under
    # `blocks` with a leading (depth,) axis instead of `blocks_{i}` (`block_layout.py` converts between the two).
    scan_blocks: bool = False
    attention_impl: str | None = None
    # With attention_impl "splash": attention groups shorter than this many tokens use XLA's attention (on TPUs an
    # unset attention_impl sets both, train.experiment.platform_attention)
    splash_min_length: int = 0
    # Initial scale of the time embedding and of the output projection `<stage>_fc` of every stage without the cls
    # token (`temporal_fc`, `local_fc`, `width_fc`): 0 starts
    # them at zero, as the official model does (a new model starts order-blind); > 0 draws them from a normal
    # distribution with that standard deviation (the demo uses it to learn frame order from scratch sooner).
    time_embed_init_std: float = 0.0
    stage_fc_init_std: float = 0.0
    # How the dense kernels start (attention.WEIGHT_INITS): "official" (std 0.02) or "fan_in" (std 1/sqrt(fan in),
    # unit gain at any width; the demo's width-64 model uses it).
    weight_init: str = "official"
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @property
    def config_grid(self) -> tuple[int, int]:
        """The patch grid (rows, cols) the position embedding was made for."""
        h, w = (self.image_size, self.image_size) if isinstance(self.image_size, int) else tuple(self.image_size)
        return h // self.patch_size, w // self.patch_size

    def clip_shape(self, batch_size: int = 1) -> tuple[int, int, int, int, int]:
        """(B, T, H, W, C) of the clips this model was configured for."""
        h, w = self.config_grid
        return (batch_size, self.num_frames, h * self.patch_size, w * self.patch_size, self.in_channels)

    def check_video(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError naming the expected and received shape when `shape` cannot be a clip for this model."""
        p, c = self.patch_size, self.in_channels
        expected = f"expected video (B, T, H, W, C) with C={c} and H, W divisible by patch size {p}"
        if len(shape) != 5:
            raise ValueError(f"{expected}; got rank {len(shape)} array of shape {tuple(shape)}")
        b, t, h, w, ch = shape
        if b < 1:
            raise ValueError(f"{expected} and B >= 1; got an empty batch, shape {tuple(shape)}")
        if ch != c:
            raise ValueError(f"{expected}; got C={ch} in shape {tuple(shape)} (channels must be last)")
        if h % p or w % p or h == 0 or w == 0:
            raise ValueError(f"{expected}; got H={h}, W={w} in shape {tuple(shape)}")
        if t < 1:
            raise ValueError(f"{expected} and T >= 1; got shape {tuple(shape)}")
        if not self.resize_embeddings:
            uses_time = self.scheme.uses_time_embed
            if (uses_time and t != self.num_frames) or (h // p, w // p) != self.config_grid:
                grid_h, grid_w = self.config_grid
                frames = f"T={self.num_frames}" if uses_time else "any T"
                raise ValueError(
                    f"expected video (B, {frames}, {grid_h * p}, {grid_w * p}, {c}) because resize_embeddings=False; "
                    f"got {tuple(shape)}"
                )

    @property
    def scheme(self) -> Scheme:
        return get_scheme(self.attention_type)

    @nn.compact
    def __call__(self, video: jax.Array, *, train: bool = False, capture_attention: bool = False) -> jax.Array:
        scheme = self.scheme
        self.check_video(video.shape)
        if not jnp.issubdtype(video.dtype, jnp.floating):
            raise ValueError(
                f"expected float video, already normalised; got dtype {video.dtype}. Normalise integer frames "
                "first: (frames / 255 - mean) / std, e.g. data.device_input.normalise_on_device(frames, mean, std)"
            )
        deterministic = not train
        grid = self._embed_patches(video)
        cls, grid = self._add_embeddings(scheme, grid, deterministic)
        cls, grid = self._run_blocks(cls, grid, deterministic, capture_attention)
        if scheme.frames_in_batch:
            # Each frame was its own image with its own cls token; the official model averages them here.
            cls = cls.reshape(video.shape[0], video.shape[1], -1).mean(axis=1)
        return self._classify(cls)

    def _embed_patches(self, video: jax.Array) -> jax.Array:
        """video (B, T, H, W, C) -> patch tokens (B, T, H/p, W/p, D): one strided convolution per frame."""
        batch, frames = video.shape[:2]
        x = jnp.asarray(video, self.dtype)
        x = nn.Conv(
            self.hidden_size,
            kernel_size=(self.patch_size, self.patch_size),
            strides=(self.patch_size, self.patch_size),
            padding="VALID",
            kernel_init=nn.with_logical_partitioning(kernel_init(self.weight_init, num_in=3),
                                                     (None, None, None, "embed")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            name="patch_embed",
        )(x.reshape((batch * frames,) + x.shape[2:]))
        return x.reshape((batch, frames) + x.shape[1:])

    def _add_embeddings(self, scheme: Scheme, grid: jax.Array, deterministic: bool):
        """Patch tokens (B, T, h, w, D) -> (cls (B', D), grid (B', T', h, w, D)) with the cls token, position and
        time embeddings; B' = B * T and T' = 1 when the scheme folds frames into the batch (no time embedding)."""
        batch, frames, grid_h, grid_w, width = grid.shape
        cls_token = self.param(
            "cls_token", nn.with_logical_partitioning(dense_init, (None, None, "embed")), (1, 1, width), self.param_dtype
        )
        cfg_h, cfg_w = self.config_grid
        pos_embed = self.param(
            "pos_embed",
            nn.with_logical_partitioning(dense_init, (None, "tokens", "embed")),
            (1, 1 + cfg_h * cfg_w, width),
            self.param_dtype,
        )
        pos_embed = resize_pos_embed(pos_embed, (cfg_h, cfg_w), (grid_h, grid_w)).astype(self.dtype)
        cls = jnp.broadcast_to(cls_token[0].astype(self.dtype) + pos_embed[0, :1], (batch, width))
        grid = grid + pos_embed[0, 1:].reshape(1, 1, grid_h, grid_w, width)
        grid = nn.Dropout(self.dropout_rate)(grid, deterministic=deterministic)
        if scheme.frames_in_batch:
            grid = grid.reshape(scheme.token_grid(batch, frames, grid_h, grid_w, width))
            cls = jnp.repeat(cls, frames, axis=0)
        else:
            time_embed = self.param(
                "time_embed",
                nn.with_logical_partitioning(_normal_or_zeros(self.time_embed_init_std), (None, "frames", "embed")),
                (1, self.num_frames, width),
                self.param_dtype,
            )
            time_embed = resize_time_embed(time_embed, frames).astype(self.dtype)
            grid = grid + time_embed[0][None, :, None, None, :]
            grid = nn.Dropout(self.dropout_rate)(grid, deterministic=deterministic)
        return cls, nn.with_logical_constraint(grid, GRID_AXES)

    def _run_blocks(self, cls: jax.Array, grid: jax.Array, deterministic: bool, capture_attention: bool):
        """The `depth` blocks, drop-path rate rising linearly from 0 to `drop_path_rate` as in the official model;
        unrolled, or scanned (`scan_blocks`) with the remat policy applied to each scanned block."""
        block_cls = Block
        if self.remat:
            block_cls = nn.remat(Block, static_argnums=(3, 4), policy=remat_policy(self.remat_policy),
                                 prevent_cse=not self.scan_blocks)
        block_fields = {name: getattr(self, name) for name in BLOCK_FIELDS}
        rates = np.linspace(0.0, self.drop_path_rate, self.depth)
        if self.scan_blocks:
            return self._scanned_blocks(block_cls(**block_fields, drop_path_rate=0.0, name="blocks"), cls, grid,
                                        deterministic, capture_attention, rates)
        for i, rate in enumerate(rates):
            block = block_cls(**block_fields, drop_path_rate=float(rate), name=f"blocks_{i}")
            cls, grid = block(cls, grid, deterministic, capture_attention)
        return cls, grid

    def _scanned_blocks(self, block: Block, cls: jax.Array, grid: jax.Array, deterministic: bool,
                        capture_attention: bool, rates: np.ndarray):
        """`block` applied `depth` times by `nn.scan`: its parameters and intermediates stacked on a leading
        (depth,) axis (replicated: no logical name), its drop-path rate scanned over `rates` (when any is > 0)."""

        def body(module, carry, rate):
            return module(*carry, deterministic, capture_attention, rate), None

        scan = nn.scan(body, variable_axes={"params": 0, "intermediates": 0},
                       split_rngs={"params": True, "dropout": True}, length=self.depth,
                       metadata_params={nn.PARTITION_NAME: None})
        scanned_rates = jnp.asarray(rates, jnp.float32) if self.drop_path_rate > 0 else None
        (cls, grid), _ = scan(block, (cls, grid), scanned_rates)
        return cls, grid

    def _classify(self, cls: jax.Array) -> jax.Array:
        """cls (B, D) -> final norm -> logits (B, num_classes), or the normed features when num_classes == 0."""
        features = _layer_norm("norm", self.layer_norm_eps, self.dtype, self.param_dtype)(cls)
        self.sow("intermediates", "pre_logits", features)
        if self.num_classes == 0:
            return features.astype(jnp.float32)
        head = logical_dense(self.num_classes, ("embed", "classes"), ("classes",), "head", self.dtype, self.param_dtype,
                             kernel_init=kernel_init(self.weight_init))
        return head(features).astype(jnp.float32)


def _normal_or_zeros(stddev: float):
    """Zeros for stddev 0 (the official init of time_embed and temporal_fc), else a normal(0, stddev) init."""
    return nn.initializers.normal(stddev) if stddev > 0 else nn.initializers.zeros


# The TimeSformer fields every block shares (the drop-path rate differs per block).
# With remat on, what each block keeps for the backward pass (the rest is recomputed): jax.checkpoint_policies.
REMAT_POLICIES = {
    "nothing": "nothing_saveable",  # keep only the block inputs: least memory, one extra forward
    "dots_no_batch": "dots_with_no_batch_dims_saveable",  # keep the weight products (qkv, proj, MLP), recompute
    # the attention scores and the elementwise work
    "dots": "dots_saveable",  # keep every matrix product, attention scores included
}


def remat_policy(name: str):
    """The `jax.checkpoint_policies` function REMAT_POLICIES names; ValueError listing them otherwise."""
    if name not in REMAT_POLICIES:
        raise ValueError(f"unknown remat_policy {name!r}; expected one of {sorted(REMAT_POLICIES)}")
    return getattr(jax.checkpoint_policies, REMAT_POLICIES[name])


BLOCK_FIELDS = tuple(f.name for f in dataclasses.fields(Block) if f.name not in ("parent", "name", "drop_path_rate"))
