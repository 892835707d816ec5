"""Attention rollout (Abnar & Zuidema 2020) through a TimeSformer, for every attention scheme.

Tokens. One clip of T frames on an H x W patch grid has N = C + T * H * W tokens: C cls tokens first (one; or
T for `space_only`, whose frames are separate images with a cls token each), then the patches in (t, h, w)
order: patch (t, h, w) is token C + (t * H + h) * W + w. `maps` are therefore (T, H, W): frame, row, column.

One stage, one transition. A stage's captured weights (G, heads, L, L) (`capture_attention=True`) are averaged
over the heads and placed into an N x N row-stochastic matrix A, row = the token being updated, column = the
token it reads:
- each patch's row is its group's attention row, columns mapped back to token ids through the stage's own
  grouping (`Grouping.split` of the token-id grid, so every scheme's grouping is read, never re-derived);
- a stage carrying the cls token appends a copy of cls to every group (column/row 0 of the group) and sets cls
  to the mean of the copies' outputs (the official per-frame cls averaging), so cls's row is the mean over its
  groups of the copies' rows, and a patch's weight on its group's cls copy goes to the cls token;
- a stage without the cls token (the temporal stage of divided attention, ...) leaves cls unchanged: its row is
  the identity.
The residual connection around every stage makes the stage's transition 0.5 * A + 0.5 * I (the paper's rule
for the residual; the rows still sum to 1). The MLP mixes no tokens, so it is the identity.

Blocks compose their stages in order: divided attention's block is S @ T, its temporal stage T applied to the
tokens first, then the spatial stage S, which is how the two stages compose in the forward pass (a patch's
spatial update reads tokens that the temporal stage has already mixed over time). The rollout after block i is
R_i = B_i @ ... @ B_0. The model's readout is the cls token (the mean of the T cls tokens for `space_only`,
as its head averages them), so the map is the readout's row of R restricted to the patch columns, reshaped to
(T, H, W); the remaining mass (1 - the map's sum) sits on the cls token(s) themselves.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from timesformer_jax.model.block_layout import block_outputs


@dataclasses.dataclass
class AttentionRollout:
    """maps: (depth, T, H, W) the readout's rollout over the patches after blocks 0..i (maps[-1]: the whole
    model); rollout: (N, N) the whole model's rollout matrix (rows sum to 1); weights: the raw captured weights,
    per block, per stage (scheme order), each (G, heads, L, L); num_cls: the cls tokens leading the N."""

    maps: np.ndarray
    rollout: np.ndarray
    weights: list[list[np.ndarray]]
    num_cls: int

    @property
    def final_map(self) -> np.ndarray:
        return self.maps[-1]


def captured_weights(module, params, clip: np.ndarray) -> list[list[np.ndarray]]:
    """The attention weights of one forward pass of `clip` (1, T, H, W, C), normalised: per block, per stage
    in the scheme's order, (G, heads, L, L) float32."""
    _, state = module.apply({"params": params}, clip, capture_attention=True, mutable="intermediates")
    inter = state["intermediates"]
    out = []
    for i in range(module.depth):
        block = block_outputs(inter, i)
        out.append([np.asarray(block["attn" if stage.with_cls else f"{stage.name}_attn"]["attention_weights"][0],
                               np.float32)
                    for stage in module.scheme.stages])
    return out


def stage_transition(stage, weights: np.ndarray, token_ids: np.ndarray, num_cls: int, num_tokens: int,
                     residual: bool = True) -> np.ndarray:
    """One stage's (N, N) transition from its weights (G, heads, L, L) (see the module docstring).
    token_ids: (B', T', H, W) the stages' token grid for one clip (`Scheme.token_grid`: (1, T, H, W), or
    (T, 1, H, W) when frames are separate images) holding each patch's token id."""
    attention = np.asarray(weights, np.float64).mean(axis=1)  # (G, L, L)
    ids = np.asarray(stage.grouping.split(token_ids[..., None]))[..., 0]  # (G, L - with_cls)
    groups = ids.shape[0]
    if attention.shape[:2] != (groups, ids.shape[1] + stage.with_cls):
        raise ValueError(f"stage {stage.name!r}: expected weights (G={groups}, heads, L={ids.shape[1] + stage.with_cls}"
                         f", L) for this clip, got {weights.shape}")
    transition = np.zeros((num_tokens, num_tokens))
    if stage.with_cls:
        cls_of_group = np.arange(groups) // (groups // num_cls)  # groups are batch-major: frame b' -> cls b'
        columns = np.concatenate([cls_of_group[:, None], ids], axis=1)
        transition[ids[:, :, None], columns[:, None, :]] = attention[:, 1:, :]
        np.add.at(transition, (np.repeat(cls_of_group, columns.shape[1]), columns.reshape(-1)),
                  attention[:, 0, :].reshape(-1) / (groups // num_cls))
    else:
        transition[ids[:, :, None], ids[:, None, :]] = attention
        transition[np.arange(num_cls), np.arange(num_cls)] = 1.0
    if residual:
        transition = 0.5 * transition + 0.5 * np.eye(num_tokens)
    return transition


def rollout_from_weights(scheme, weights: list[list[np.ndarray]], frames: int, grid_h: int, grid_w: int,
                         residual: bool = True) -> AttentionRollout:
    """The rollout of captured `weights` (per block, per stage) of one clip of `frames` frames on a
    grid_h x grid_w patch grid, under attention `scheme` (`model.schemes.Scheme`)."""
    num_cls = scheme.cls_tokens(frames)
    num_tokens = num_cls + frames * grid_h * grid_w
    token_ids = num_cls + np.arange(frames * grid_h * grid_w).reshape(scheme.token_grid(1, frames, grid_h, grid_w, 1)[:4])
    readout = np.zeros(num_tokens)
    readout[:num_cls] = 1.0 / num_cls  # the head reads the (mean of the) cls token(s)
    rollout, maps = np.eye(num_tokens), []
    for block_weights in weights:
        block = np.eye(num_tokens)
        for stage, stage_weights in zip(scheme.stages, block_weights):
            block = stage_transition(stage, stage_weights, token_ids, num_cls, num_tokens, residual) @ block
        rollout = block @ rollout
        maps.append((readout @ rollout)[num_cls:].reshape(frames, grid_h, grid_w))
    return AttentionRollout(np.stack(maps), rollout, weights, num_cls)


def attention_rollout(model, clip: np.ndarray, residual: bool = True) -> AttentionRollout:
    """Attention rollout of `model` (a `PretrainedTimeSformer`) on one normalised clip (T, H, W, C) or
    (1, T, H, W, C); maps (depth, T, H / patch, W / patch)."""
    clip = np.asarray(clip)
    if clip.ndim == 4:
        clip = clip[None]
    if clip.ndim != 5 or clip.shape[0] != 1:
        raise ValueError(f"expected one clip (T, H, W, C) or (1, T, H, W, C), got shape {clip.shape}")
    module = model.module
    module.check_video(clip.shape)
    weights = captured_weights(module, model.params, clip.astype(module.dtype))
    patch = module.patch_size
    return rollout_from_weights(module.scheme, weights, clip.shape[1], clip.shape[2] // patch, clip.shape[3] // patch,
                                residual)
