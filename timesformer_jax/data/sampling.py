"""Which frames of a stored video make a clip: the official TimeSformer (PySlowFast) sampling rules.

Pure functions of the video length and a position in [0, 1]; the pipeline draws the position (random at
training, fixed per view at test) and gathers only the frames named here.

Dense sampling (Kinetics, UCF101; `kinetics.py` / `decoder.py` of the official code): a clip spans
`clip_size = num_frames * sampling_rate * fps / target_fps` source frames (the sampling rate is defined at
`target_fps`, 30 in the official configs, so videos of other frame rates cover the same time). Its start is
`position * max(video_length - clip_size, 0)`: a uniform draw at training, and `view / num_views` for test view
`view` (the official code divides by `num_views`, not `num_views - 1`, so the last view does not reach the end).
`num_frames` indices are spaced evenly over [start, start + clip_size - 1], clamped to the video and truncated
to integers, so a video shorter than the clip repeats its last frame, as the official code does. The truncation
is that of exact arithmetic (`floor(x + INTEGER_TOLERANCE)`): positions that are integers in exact arithmetic
(e.g. 78 2/3 + 10 1/3 = 89) come out as 88.99999... in floating point, and the official `torch.linspace`
(float32) mostly, but not always, lands on the integer there; in a sweep of 20,000 random (length, fps, rate,
frames, view) cases plain float64 truncation disagreed with torch on 109, this rule on 10 (torch's own float32
rounding, which also depends on its CPU vector width).

Segment sampling (Something-Something v2; `ssv2.py`): the video is cut into `num_frames` equal segments and
one frame is taken from each, uniformly at random within the segment at training and from its middle at test.
"""
from __future__ import annotations

import numpy as np

TARGET_FPS = 30.0
INTEGER_TOLERANCE = 1e-6  # sampled positions this close below an integer are that integer (see above)


def dense_indices(
    video_length: int,
    num_frames: int,
    sampling_rate: int,
    position: float,
    fps: float = TARGET_FPS,
    target_fps: float = TARGET_FPS,
) -> np.ndarray:
    """(num_frames,) int indices into a video of `video_length` frames; `position` in [0, 1]."""
    clip_size = dense_clip_size(num_frames, sampling_rate, fps, target_fps)
    return spaced_indices(position * max(video_length - clip_size, 0.0), clip_size, num_frames, video_length)


def dense_clip_size(num_frames: int, sampling_rate: int, fps: float = TARGET_FPS,
                    target_fps: float = TARGET_FPS) -> float:
    """Source frames one dense clip spans: `num_frames * sampling_rate` at `target_fps`, scaled to `fps`
    (an unknown rate, 0, counts as `target_fps`)."""
    return num_frames * sampling_rate * (fps or target_fps) / target_fps


def spaced_indices(start: float, clip_size: float, num_frames: int, video_length: int) -> np.ndarray:
    """(num_frames,) indices spaced evenly over [start, start + clip_size - 1], clamped to a video of
    `video_length` frames and truncated (with INTEGER_TOLERANCE): the official dense rule for a given start."""
    if video_length < 1:
        raise ValueError(f"expected a video with at least one frame, got video_length={video_length}")
    index = np.linspace(start, start + clip_size - 1, num_frames)
    return np.floor(np.clip(index, 0, video_length - 1) + INTEGER_TOLERANCE).astype(np.int64)


def sliding_window_starts(video_length: int, clip_size: float, stride: float) -> np.ndarray:
    """(N,) float start frames of the dense clips slid over a whole video: 0, stride, 2 * stride, ... as long as
    the clip fits (start + clip_size <= video_length); a video shorter than one clip gets the single start 0
    (its clip repeats the last frame, as `dense_indices` does). `stride` and `clip_size` in source frames."""
    if video_length < 1:
        raise ValueError(f"expected a video with at least one frame, got video_length={video_length}")
    if stride <= 0:
        raise ValueError(f"the window stride must be positive, got {stride} frames")
    count = 1 + max(0, int(np.floor((video_length - clip_size) / stride + INTEGER_TOLERANCE)))
    return np.arange(count) * float(stride)


def temporal_view_positions(num_views: int) -> np.ndarray:
    """Positions of the `num_views` temporal test views: view / num_views (the official rule)."""
    return np.arange(num_views) / num_views


def segment_indices(video_length: int, num_frames: int, offsets: np.ndarray | None = None) -> np.ndarray:
    """(num_frames,) indices, one per segment. `offsets` (num_frames,) in [0, 1) picks within each segment
    (training: uniform draws); None takes each segment's middle (test)."""
    if video_length < 1:
        raise ValueError(f"expected a video with at least one frame, got video_length={video_length}")
    segment = (video_length - 1) / num_frames
    starts = np.round(segment * np.arange(num_frames)).astype(np.int64)
    ends = np.round(segment * np.arange(1, num_frames + 1)).astype(np.int64)
    if offsets is None:
        return (starts + ends) // 2
    # random.randint(start, end) includes `end`: end - start + 1 choices.
    return starts + np.minimum(np.floor(np.asarray(offsets) * (ends - starts + 1)), ends - starts).astype(np.int64)
