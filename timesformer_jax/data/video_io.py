"""Video files in and out with PyAV (its wheels bundle FFmpeg with H.264, VP9 and MPEG-4 codecs).

Decoding is for dataset preparation: every frame at the source frame rate, resized so that the shorter side is
at most `short_side` (FFmpeg's swscale does the resize while converting to RGB). Writing is for the generated
dataset and the tests, with the codecs real dataset copies use.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import av
import numpy as np

# Container suffix -> (codec, pixel format) as the real datasets ship them.
CODECS = {".mp4": ("libx264", "yuv420p"), ".webm": ("libvpx-vp9", "yuv420p"), ".avi": ("mpeg4", "yuv420p")}


class VideoReadError(ValueError):
    """A video that cannot be decoded (missing, empty, truncated or corrupt)."""


@dataclasses.dataclass(frozen=True)
class DecodedVideo:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(H, W) with the shorter side scaled down to `short_side` (never up), aspect kept, both even."""
    if not short_side or min(height, width) <= short_side:
        return height, width
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def decode_video(path: str | Path, short_side: int | None = 320) -> DecodedVideo:
    """All frames of the first video stream, RGB, shorter side at most `short_side` (None: source size)."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"no video file at {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path} is empty (0 bytes)")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path} has no video stream (truncated, or not a video?)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            for frame in container.decode(stream):
                height, width = resized_shape(frame.height, frame.width, short_side)
                frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
    except av.FFmpegError as e:
        if not frames:
            raise VideoReadError(f"cannot decode {path} (truncated or corrupt?): {e}") from e
        # A file cut short mid-stream still yields the frames before the cut; keep them, as decoders of the
        # official loaders do.
    if not frames:
        raise VideoReadError(f"{path} holds no decodable frames")
    return DecodedVideo(np.stack(frames), fps)


def write_video(path: str | Path, frames: np.ndarray | Sequence[np.ndarray], fps: float = 25.0) -> None:
    """Encode RGB frames (T, H, W, 3) uint8 with the codec of the path's suffix (`CODECS`); H and W even."""
    path = Path(path)
    if path.suffix not in CODECS:
        raise ValueError(f"unsupported video suffix {path.suffix!r}; expected one of {sorted(CODECS)}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected frames (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"frame height and width must be even for yuv420p, got {frames.shape[1:3]}")
    codec, pixel_format = CODECS[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=_as_fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pixel_format
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _as_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
