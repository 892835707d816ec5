"""Where the sliding windows of a video lie: one dense clip of the test protocol every `stride_seconds` (default:
half a window) from the first frame, as long as the window fits in the video; a video shorter than one window
gets one window whose clip repeats its last frame, as the official sampling does
(`data.sampling.sliding_window_starts`, `spaced_indices`)."""
from __future__ import annotations

import dataclasses

import numpy as np

from timesformer_jax.data.sampling import dense_clip_size, sliding_window_starts, spaced_indices

MAX_WINDOWS = 200_000  # per video: a whole day at 0.5 s strides; more is a mistyped stride


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """Where the windows of one video lie. starts: (N,) first source frame (float); indices: (N, T) sampled
    frames; ends: (N,) one past the last frame the window spans (clipped to the video)."""

    video_length: int
    fps: float
    starts: np.ndarray
    ends: np.ndarray
    indices: np.ndarray

    @property
    def num_windows(self) -> int:
        return len(self.starts)

    @property
    def start_seconds(self) -> np.ndarray:
        return self.starts / self.fps

    @property
    def end_seconds(self) -> np.ndarray:
        return self.ends / self.fps


def plan_windows(video_length: int, fps: float, num_frames: int, sampling_rate: int,
                 stride_seconds: float | None = None, target_fps: float = 30.0) -> WindowPlan:
    """The sliding windows over a video of `video_length` frames at `fps` (0: unknown, taken as `target_fps`).
    stride_seconds None: half a window."""
    fps = fps or target_fps
    clip_size = dense_clip_size(num_frames, sampling_rate, fps, target_fps)
    stride = clip_size / 2 if stride_seconds is None else stride_seconds * fps
    if stride < 1 - 1e-9:
        raise ValueError(f"stride_seconds must be at least one frame of the video (1/{fps:g} fps = {1 / fps:.4g} s; "
                         f"closer windows repeat the same frames), got {stride_seconds}")
    count = 1 + max(0, int((video_length - clip_size) // stride))
    if count > MAX_WINDOWS:
        raise ValueError(f"stride_seconds={stride_seconds} gives {count} windows over {video_length} frames, more "
                         f"than {MAX_WINDOWS}; use a longer stride")
    starts = sliding_window_starts(video_length, clip_size, stride)
    indices = np.stack([spaced_indices(s, clip_size, num_frames, video_length) for s in starts])
    return WindowPlan(video_length, float(fps), starts, np.minimum(starts + clip_size, video_length), indices)
