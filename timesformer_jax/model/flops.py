"""Analytic forward FLOPs of a TimeSformer, counted by hand from the architecture (one multiply-add = 2 FLOPs).

Only matrix products are counted -- the patch-embedding convolution, the q/k/v/out projections, the attention
scores and their weighted sum, the temporal/window output projections (`*_fc`), the MLP and the head -- which is
also how the paper's numbers (fvcore) count. Normalisation, softmax, GELU and residual adds are left out; they
are what XLA's own count (`cost_analysis`) adds on top, a few percent for realistic widths.

For a clip of T frames on an h x w patch grid (N = h*w), width D and MLP width M, each attention stage splits the
tokens into groups of length L (cls copies included where the stage carries the cls token); a stage over `n`
token rows in `G` groups of length L costs `n * 8 D^2` for q, k, v and the output projection, plus
`G * 4 L^2 D` for the scores and the weighted sum. The group layouts come from the scheme's description
(`model/schemes.py`), so a new scheme is counted without code here; the tests check them against the paper's
layouts (Section 3), written out by hand, and the total against XLA's own count.

The last block's MLP over the patch tokens feeds nothing (only the cls token reaches the head): it is in
`total`, as the paper counts it, and not in `needed`, as XLA compiles it.

The paper quotes multiply-adds: base TimeSformer, 8 x 224^2, 0.196 T per view, i.e. 0.39 TFLOPs here.
"""
from __future__ import annotations

import dataclasses

from timesformer_jax.model.schemes import StageLayout, get_scheme
from timesformer_jax.model.timesformer import TimeSformer


def attention_groups(attention_type: str, frames: int, grid_h: int, grid_w: int) -> tuple[StageLayout, ...]:
    """The attention stages of one block for a clip of `frames` frames on a `grid_h` x `grid_w` patch grid: each
    stage's group count and group length, read off the scheme's own groupings (`model/schemes.py`)."""
    return get_scheme(attention_type).layouts(frames, grid_h, grid_w)


def _model_defaults() -> dict:
    return {f.name: f.default for f in dataclasses.fields(TimeSformer) if f.default is not dataclasses.MISSING}


def forward_flops(fields: dict, batch_size: int = 1) -> dict[str, float]:
    """Analytic forward FLOPs for `batch_size` clips of a model with TimeSformer `fields` (a preset dict).

    Returns a breakdown {'patch_embed', 'attention_projections', 'attention_scores', 'mlp', 'head'}, their sum
    'total' (the paper's convention: every token through every block) and 'needed': `total` less the work whose
    output nothing reads (what a compiler that removes dead code executes, so what XLA's count is compared with).
    """
    fields = {**_model_defaults(), **fields}
    image = fields["image_size"]
    image_h, image_w = (image, image) if isinstance(image, int) else tuple(image)
    p, d, m = fields["patch_size"], fields["hidden_size"], fields["mlp_dim"]
    t, depth, classes = fields["num_frames"], fields["depth"], fields["num_classes"]
    channels = fields["in_channels"]
    h, w = image_h // p, image_w // p
    n = h * w
    stages = attention_groups(fields["attention_type"], t, h, w)
    projections = scores = 0.0
    for stage in stages:
        rows = stage.groups * stage.length
        projections += rows * (8 * d * d + (2 * d * d if stage.output_fc else 0))
        scores += stage.groups * 4 * stage.length**2 * d
    # The MLP sees every patch token once, and each cls token once (one per frame for space-only, where frames
    # are separate images).
    mlp_rows = t * n + get_scheme(fields["attention_type"]).cls_tokens(t)
    breakdown = {
        "patch_embed": 2.0 * t * n * p * p * channels * d,
        "attention_projections": depth * projections,
        "attention_scores": depth * scores,
        "mlp": depth * mlp_rows * 4.0 * d * m,
        "head": 2.0 * d * classes,
    }
    breakdown = {k: v * batch_size for k, v in breakdown.items()}
    breakdown["total"] = sum(breakdown.values())
    # Only the cls token reaches the head, so the last block's MLP over the patch tokens produces nothing that is
    # read: the official model computes it anyway, XLA removes it as dead code.
    unread = t * n * 4.0 * d * m * batch_size
    breakdown["needed"] = breakdown["total"] - unread
    return breakdown
