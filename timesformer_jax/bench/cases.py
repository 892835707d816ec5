"""What the benchmark measures: the paper's cost grid (Figure 3) and the named speed cases.

Grid: base TimeSformer (ViT-B/16), every attention scheme, frames 8/16/32/64/96 at 224^2 and image sizes
224/336/448/560 at 8 frames. Speed cases: `small` (64 px, 8 frames, width 192, 4 blocks, batch 4) and `base`
(8 x 224, batch 1), timed against the PyTorch reference.
"""
from __future__ import annotations

import dataclasses

from timesformer_jax.model import ATTENTION_TYPES, get_scheme, preset_config

GRID_FRAMES = (8, 16, 32, 64, 96)
GRID_IMAGE_SIZES = (224, 336, 448, 560)


@dataclasses.dataclass(frozen=True)
class BenchCase:
    """One model configuration at one batch size. `sweep` names the grid axis it belongs to ('frames',
    'image_size') or 'speed' for a named speed case."""

    name: str
    fields: dict
    batch_size: int
    sweep: str

    @property
    def attention_type(self) -> str:
        return self.fields["attention_type"]

    @property
    def frames(self) -> int:
        return self.fields["num_frames"]

    @property
    def image_size(self) -> int:
        return self.fields["image_size"]


SPEED_PRESETS = {
    # The small config: 64 px, 8 frames, width 192, 4 blocks (patch 8: 64 patches per frame).
    "small": (dict(preset_config("timesformer_small"), depth=4), 4),
    "base": (preset_config("timesformer_base"), 1),
}


def unsupported_reason(fields: dict) -> str | None:
    """Why a scheme cannot run this clip size (e.g. sparse local-global needs an even frame count and patch
    grid), in the words of the scheme's own check; None when it can."""
    grid = fields["image_size"] // fields["patch_size"]
    try:
        get_scheme(fields["attention_type"]).check(fields["num_frames"], grid, grid)
    except ValueError as e:
        return str(e)
    return None


def grid_cases(schemes=ATTENTION_TYPES, frames=GRID_FRAMES, image_sizes=GRID_IMAGE_SIZES,
               batch_size: int = 1) -> list[BenchCase]:
    """The Figure 3 grid for `schemes`: a frames sweep at 224^2 and an image-size sweep at 8 frames."""
    cases = []
    for scheme in schemes:
        for t in frames:
            fields = preset_config("timesformer_base", attention_type=scheme, num_frames=t)
            cases.append(BenchCase(f"base {t}x224", fields, batch_size, "frames"))
        for size in image_sizes:
            fields = preset_config("timesformer_base", attention_type=scheme, image_size=size)
            cases.append(BenchCase(f"base 8x{size}", fields, batch_size, "image_size"))
    return cases


def speed_cases(names=tuple(SPEED_PRESETS), schemes=("divided_space_time",), batch_size: int | None = None):
    """The named speed cases for `schemes`; `batch_size` overrides each case's own."""
    cases = []
    for name in names:
        if name not in SPEED_PRESETS:
            raise ValueError(f"unknown speed case {name!r}; expected some of {sorted(SPEED_PRESETS)}")
        fields, default_batch = SPEED_PRESETS[name]
        for scheme in schemes:
            cases.append(BenchCase(name, {**fields, "attention_type": scheme}, batch_size or default_batch, "speed"))
    return cases
