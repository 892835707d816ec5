"""`synthetic_motion`: a generated video dataset on which frame order matters, written as real video files.

Ten classes. Eight come in time-reversal pairs -- `move_left`/`move_right`, `move_up`/`move_down`,
`rotate_clockwise`/`rotate_counterclockwise`, `approach`/`recede` -- and clip i of the second class of a pair
is clip i of the first (same background, shape, colour and path) played backwards. The set of frames of a clip
therefore says nothing about which class of its pair it belongs to: a model that ignores frame order
(space-only attention averages per-frame features) gives both clips of a pair the same scores (up to codec
noise), so it is at chance between the two, and only temporal modelling separates them. Pairing the clips also
leaves a model no appearance to memorise in place of the direction of time. Two appearance classes
(`still_ring`, `still_cross`: a static shape no motion class uses) check that appearance is learnt too.

Everything comes from one seed: dark textured backgrounds (smooth colour fields plus grain), a random shape, light
colour, position, speed and size per clip. The object is always lighter than its background: with saturated
colours of either polarity (the first version), finding the object needs a comparison between patches, and a
TimeSformer trained from scratch (ours and Hugging Face's alike) sat at chance for over a thousand updates; with
a light object on a dark scene the patch embedding alone tells object from background. Clips are written as
lossless FFV1 `.mkv` files (RGB; decoding gives back exactly the rendered frames, and the same seed gives the
same files on every build, which H.264 did not) in the `video_folder` layout `<root>/<split>/<class>/<clip>.mkv`,
so they go through the same builder and decoder as users' data.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np

from timesformer_jax.data.video_io import write_video
from timesformer_jax.data.work_pool import process_map

SUFFIX = ".mkv"  # lossless and bit-reproducible (video_io.CODECS)

CLASSES = (
    "move_left", "move_right", "move_up", "move_down",
    "rotate_clockwise", "rotate_counterclockwise", "approach", "recede",
    "still_ring", "still_cross",
)
# The second of each pair is the time reversal of the first.
REVERSAL_PAIRS = (("move_right", "move_left"), ("move_down", "move_up"),
                  ("rotate_clockwise", "rotate_counterclockwise"), ("approach", "recede"))
_FORWARD = {second: first for first, second in REVERSAL_PAIRS}  # reversed class -> the class it reverses


@dataclasses.dataclass(frozen=True)
class SyntheticSize:
    train_per_class: int
    test_per_class: int
    image_size: int
    num_frames: int
    fps: float = 10.0


SIZES = {
    "ci": SyntheticSize(train_per_class=24, test_per_class=8, image_size=32, num_frames=16),
    # Many small clips rather than fewer large ones: from scratch, a transformer learns from the number of
    # distinct clips it sees far more than from their resolution (the demo's measurements: README, Training).
    "demo": SyntheticSize(train_per_class=300, test_per_class=20, image_size=32, num_frames=16),
}


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float in [0, 0.55]: a smooth, dark random colour field plus fine grain."""
    coarse = rng.uniform(0.08, 0.42, size=(4, 4, 3))
    axis = np.linspace(0, 3, size)
    i0 = np.minimum(np.floor(axis).astype(int), 2)
    t = (axis - i0)[:, None]
    rows = coarse[i0] * (1 - t[..., None]) + coarse[i0 + 1] * t[..., None]  # (size, 4, 3)
    field = rows[:, i0] * (1 - t[None]) + rows[:, i0 + 1] * t[None]  # (size, size, 3)
    return np.clip(field + rng.normal(0, 0.03, size=field.shape), 0, 0.55)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    return y / size, x / size  # [0, 1) coordinates, y pointing down


def _soft(distance_inside: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased coverage from a signed distance (positive inside), in units of the image size."""
    return np.clip(distance_inside * size + 0.5, 0, 1)


def _shape_mask(kind: str, y, x, cy, cx, radius, angle, size) -> np.ndarray:
    dy, dx = y - cy, x - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # coordinates in the shape's rotated frame
    if kind == "disc":
        return _soft(radius - np.hypot(dx, dy), size)
    if kind == "square":
        return _soft(radius - np.maximum(np.abs(u), np.abs(v)), size)
    if kind == "triangle":
        # Equilateral, pointing along the rotated +u axis.
        d = np.maximum.reduce([-u - radius / 2, 0.866 * v + 0.5 * u - radius / 2, -0.866 * v + 0.5 * u - radius / 2])
        return _soft(-d, size)
    if kind == "hand":  # a clock hand: a bar from the centre with a disc at its tip; shows rotation direction
        bar = np.minimum(radius - np.abs(u - radius), radius * 0.25 - np.abs(v))
        tip = radius * 0.45 - np.hypot(u - 2 * radius, v)
        return np.maximum(_soft(bar, size), _soft(tip, size))
    if kind == "ring":
        r = np.hypot(dx, dy)
        return _soft(radius * 0.3 - np.abs(r - radius * 0.8), size)
    if kind == "cross":  # two bars, half-width radius/4 and half-length radius
        width = radius * 0.25
        bars = np.maximum(np.minimum(width - np.abs(u), radius - np.abs(v)), np.minimum(width - np.abs(v), radius - np.abs(u)))
        return _soft(bars, size)
    raise ValueError(kind)


def _trajectory(name: str, rng: np.random.Generator, t: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame (cy, cx, radius, angle) of the forward class `name`; `t` in [0, 1]."""
    radius = rng.uniform(0.11, 0.16)
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    angle = np.full_like(t, rng.uniform(0, 2 * np.pi))
    ones = np.ones_like(t)
    if name == "move_right":
        start, travel = rng.uniform(0.12, 0.35), rng.uniform(0.35, 0.55)
        return dict(cy=cy * ones, cx=start + travel * t, radius=radius * ones, angle=angle)
    if name == "move_down":
        start, travel = rng.uniform(0.12, 0.35), rng.uniform(0.35, 0.55)
        return dict(cy=start + travel * t, cx=cx * ones, radius=radius * ones, angle=angle)
    if name == "rotate_clockwise":  # y points down, so a growing angle turns clockwise on screen
        # The hand starts within 45 degrees of 12 o'clock, so a clockwise clip goes from the top towards the
        # right and its reversal comes back to the top from there. A start anywhere on the dial made the
        # direction a conjunction of where the tip is and which way it moves (at the top, moving right is
        # clockwise; at the bottom, counterclockwise), which divided attention learnt last or not at all
        # (52.5% on the pair for seed 0).
        turn = rng.uniform(0.6, 1.0) * np.pi
        start = -0.5 * np.pi + rng.uniform(-0.25, 0.25) * np.pi
        return dict(cy=0.5 * ones, cx=0.5 * ones, radius=0.17 * ones, angle=start + turn * t)
    if name == "approach":
        small, large = rng.uniform(0.05, 0.08), rng.uniform(0.2, 0.26)
        return dict(cy=cy * ones, cx=cx * ones, radius=small + (large - small) * t, angle=angle)
    raise ValueError(name)


def render_clip(label: str, rng: np.random.Generator, size: int, num_frames: int) -> np.ndarray:
    """(num_frames, size, size, 3) uint8 RGB clip of class `label`."""
    background = _background(rng, size)
    colour = rng.uniform(0.75, 1.0, size=3)  # light: brighter than every background pixel in every channel
    y, x = _grid(size)
    t = np.linspace(0, 1, num_frames)
    if label in ("still_ring", "still_cross"):
        kind = label.split("_")[1]
        cy, cx = rng.uniform(0.35, 0.65, size=2)
        path = dict(cy=cy + 0 * t, cx=cx + 0 * t, radius=rng.uniform(0.14, 0.2) + 0 * t,
                    angle=rng.uniform(0, np.pi / 2) + 0 * t)
    else:
        source = _FORWARD.get(label, label)
        kind = "hand" if source == "rotate_clockwise" else rng.choice(["disc", "square", "triangle"])
        path = _trajectory(source, rng, t)
        if label in _FORWARD:  # the reversed class: the same clip, played backwards
            path = {k: v[::-1] for k, v in path.items()}
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for i in range(num_frames):
        mask = _shape_mask(kind, y, x, path["cy"][i], path["cx"][i], path["radius"][i], path["angle"][i], size)
        image = background * (1 - mask[..., None]) + colour * mask[..., None]
        frames[i] = np.round(image * 255).astype(np.uint8)
    return frames


def write_synthetic_motion(
    root: str | Path,
    size: str | SyntheticSize = "ci",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> Path:
    """Write the dataset as `<root>/{train,test}/<class>/<class>_<index>.mkv`; returns `root`.

    Deterministic in `seed`: each clip has its own random stream, derived from (seed, split, class, index), so
    the files do not depend on `workers` (processes, one (split, class) folder at a time; default: every core).
    """
    spec = SIZES[size] if isinstance(size, str) else size
    root = Path(root)
    log = log or (lambda message: None)
    counts = {"train": spec.train_per_class, "test": spec.test_per_class}
    jobs = [(str(root), seed, split_index, split, label, per_class, spec.image_size, spec.num_frames, spec.fps)
            for split_index, (split, per_class) in enumerate(counts.items()) for label in CLASSES if per_class]
    total = sum(counts.values()) * len(CLASSES)
    workers = workers or os.cpu_count() or 1
    written = 0
    for (_, _, _, split, label, *_), count in zip(jobs, process_map(_write_class_folder, jobs, workers)):
        written += count
        log(f"{split}/{label}: {count} clips written ({written}/{total})")
    return root


def _write_class_folder(job) -> int:
    root, seed, split_index, split, label, per_class, image_size, num_frames, fps = job
    # The reversed class of a pair draws from its forward class's stream: clip i of `move_left` is clip i of
    # `move_right` played backwards, background and all, so nothing but frame order tells them apart.
    stream = CLASSES.index(_FORWARD.get(label, label))
    for index in range(per_class):
        rng = np.random.default_rng([seed, split_index, stream, index])
        clip = render_clip(label, rng, image_size, num_frames)
        write_video(Path(root) / split / label / f"{label}_{index:04d}{SUFFIX}", clip, fps)
    return per_class
