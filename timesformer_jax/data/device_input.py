"""What the accelerator does to the input: uint8 frames to normalised floats, inside the jitted train and eval
steps (`train.state.make_train_step` / `make_eval_step`).

With `clip.dtype = "uint8"` the input pipeline stops after the crop and resize (rounding to uint8) and the
host does no float work; a batch crosses PCIe and the host-to-device copy as 1 byte per value instead of 4 (2
for bfloat16), and this function applies the pipeline's own formula, `(x / 255 - mean) / std` in float32, on
the device. Float batches (the pipeline normalised them already) pass through unchanged.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

MEAN = (0.45, 0.45, 0.45)  # the official Kinetics normalisation (ClipConfig's defaults)
STD = (0.225, 0.225, 0.225)


def normalise_on_device(video, mean: Sequence[float] = MEAN, std: Sequence[float] = STD):
    """uint8 video (..., C) -> float32 `(video / 255 - mean) / std`; float video is returned as it is."""
    if video.dtype != jnp.uint8:
        return video
    x = video.astype(jnp.float32)
    return (x / jnp.float32(255.0) - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
