"""`ClipConfig`: how clips are cut from a video and augmented, shared by the input pipelines, inference and
the training config (no TensorFlow needed to read or check one)."""
from __future__ import annotations

import dataclasses

SAMPLING_MODES = ("dense", "segment")
CLIP_DTYPES = ("float32", "bfloat16", "uint8")


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """How clips are cut and augmented. Defaults: the official Kinetics-400 TimeSformer config (8 x 32, 224)."""

    num_frames: int = 8
    sampling: str = "dense"  # "dense" (Kinetics, UCF101) or "segment" (SSv2)
    sampling_rate: int = 32  # dense only: frame step at target_fps
    target_fps: float = 30.0
    crop_size: int = 224
    train_scale: tuple[int, int] = (256, 320)  # shorter-side jitter range
    flip: bool = True  # off for datasets whose labels name directions (SSv2)
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    num_temporal_views: int = 1
    num_spatial_crops: int = 3
    antialias: bool = False  # test resize: False is the official (torch bilinear, align_corners=False)
    # what the pipeline yields: normalised "float32" / "bfloat16", or "uint8" frames that the train and eval
    # steps normalise on the device (a quarter of float32's bytes through the host and over PCIe)
    dtype: str = "float32"

    def __post_init__(self):
        if self.dtype not in CLIP_DTYPES:
            raise ValueError(f"dtype must be one of {CLIP_DTYPES}, got {self.dtype!r}")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {self.sampling!r}")
        if self.num_spatial_crops not in (1, 3):
            raise ValueError(f"num_spatial_crops must be 1 (centre) or 3, got {self.num_spatial_crops}")
        if self.train_scale[0] < self.crop_size or self.train_scale[0] > self.train_scale[1]:
            raise ValueError(f"train_scale {self.train_scale} must satisfy crop_size <= min <= max")

    @property
    def num_views(self) -> int:
        return self.num_temporal_views * self.num_spatial_crops
