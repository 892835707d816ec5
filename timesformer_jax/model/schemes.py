"""The five space-time attention schemes of TimeSformer, the registry that names them, and how a checkpoint's
parameters name its scheme.

Every scheme is a sequence of *stages*. A stage regroups the token grid `(B, T, H, W, D)` (T frames, an H x W
patch grid) into independent groups `(B * G, L, D)`, runs self-attention inside each group, and ungroups. Schemes
differ only in how they group tokens, so adding a scheme means registering one `Scheme` (`register_scheme`): the model, the FLOP
formula, checkpoint detection and the benchmark read everything from it.

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

import einops
import jax
import numpy as np


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


def register_scheme(name: str, scheme: Scheme, replace: bool = False) -> Scheme:
    """Make `scheme` available as `attention_type=name` everywhere: the model, FLOPs, checkpoint detection and
    conversion, rollout and the benchmark read the registry. ValueError when `name` is taken (unless `replace`);
    a `Scheme` checks its own stages when it is made."""
    if not name or not isinstance(name, str):
        raise ValueError(f"a scheme needs a non-empty name, got {name!r}")
    if name in SCHEMES and not replace:
        raise ValueError(f"attention_type {name!r} is already registered; pass replace=True to replace it")
    if not isinstance(scheme, Scheme):
        raise TypeError(f"register_scheme takes a Scheme, got {type(scheme).__name__}")
    SCHEMES[name] = scheme
    return scheme


def unregister_scheme(name: str) -> None:
    """Remove a scheme `register_scheme` added (the built-in ones stay)."""
    if name in ATTENTION_TYPES:
        raise ValueError(f"{name!r} is a built-in scheme")
    SCHEMES.pop(name, None)


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
