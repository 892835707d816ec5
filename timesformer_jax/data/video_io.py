"""Video files in and out with PyAV (its wheels bundle FFmpeg with H.264, VP9 and MPEG-4 codecs).

`decode_video` is for dataset preparation: every frame at the source frame rate, resized so that the shorter
side is at most `short_side` (FFmpeg's swscale does the resize while converting to RGB). `probe_video` and
`read_frames` are for inference: the frame count and rate from the container, then only the frames asked for,
at full resolution, seeking to the keyframe before the first one and stopping after the last. Writing is for the
generated dataset and the tests, with the codecs real dataset copies use. `FrameStream` is for long videos:
one pass from the start, converting only the frames asked for.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import av
import numpy as np

# What counts as a video file when a folder is walked (builders' class folders, inference inputs): containers
# PyAV (FFmpeg) reads.
VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp")

# Container suffix -> (encoder, pixel format): the first three as the real datasets ship them. `.mkv` is lossless
# (FFV1 on RGB: the decoded frames are the written ones) and bit-reproducible, which the generated datasets need:
# libx264 encoded 5-15% of the demo clips differently in different processes from the same frames.
CODECS = {".mp4": ("libx264", "yuv420p"), ".webm": ("libvpx-vp9", "yuv420p"), ".avi": ("mpeg4", "yuv420p"),
          ".mkv": ("ffv1", "bgr0")}


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


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    height: int
    width: int


def _open(path: Path):
    if not path.is_file():
        raise VideoReadError(f"no video file at {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path} is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        raise VideoReadError(f"cannot open {path} as a video (truncated or not a video?): {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path} has no video stream (truncated, or not a video?)")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, frame rate and size of the first video stream, without decoding. The count is the
    container's when it records one (MP4), else the number of video packets (WebM, MKV)."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        count = stream.frames
        try:
            if not count:
                count = sum(1 for packet in container.demux(stream) if packet.size)
        except av.FFmpegError as e:
            raise VideoReadError(f"cannot read the packets of {path} (truncated or corrupt?): {e}") from e
        height, width = stream.codec_context.height, stream.codec_context.width
    if count < 1:
        raise VideoReadError(f"{path} holds no video frames")
    return VideoInfo(int(count), float(rate) if rate else 0.0, int(height), int(width))


def read_frames(path: str | Path, indices: Sequence[int], fps: float) -> dict[int, np.ndarray]:
    """{index: (H, W, 3) uint8 RGB frame} for the distinct frame `indices` (0-based, in decode order) of a video
    at `fps`, at full resolution. Seeks to the keyframe at or before the first index and stops after the last,
    so the cost is that of the span between them. Frames missing from the result (a file shorter than its
    header says) are the caller's to handle."""
    path = Path(path)
    wanted = {int(i) for i in indices}
    if not wanted:
        return {}
    frames = _decode_span(path, wanted, fps, seek=min(wanted) > 0 and fps > 0)
    if frames is None:  # no timestamps to place the first frame after a seek: decode from the start
        frames = _decode_span(path, wanted, fps, seek=False)
    return frames


def _decode_span(path: Path, wanted: set[int], fps: float, seek: bool) -> dict[int, np.ndarray] | None:
    first, last = min(wanted), max(wanted)
    frames: dict[int, np.ndarray] = {}
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base, start = stream.time_base, stream.start_time or 0
        if seek:
            # backward=True lands on the keyframe at or before the target; decoding resumes from there.
            container.seek(start + int(first / fps / base), stream=stream, backward=True, any_frame=False)
        index = None
        try:
            for frame in container.decode(stream):
                if index is not None:
                    index += 1
                elif not seek:
                    index = 0
                elif frame.pts is None:
                    return None
                else:  # the first frame after a seek: its position from its timestamp (constant frame rate)
                    index = round(float((frame.pts - start) * base) * fps)
                if index > last:
                    break
                if index in wanted:
                    frames[index] = frame.to_ndarray(format="rgb24")
        except av.FFmpegError as e:
            if not frames:
                raise VideoReadError(f"cannot decode {path} (truncated or corrupt?): {e}") from e
    return frames


class FrameStream:
    """The frames of a video whose indices `wanted` names, decoded once, in order, from the start.

    Iterating yields `(index, (H, W, 3) uint8 RGB)` for the wanted frames only; every other frame is decoded
    (the codec needs it) but never converted to RGB or kept, so memory holds one frame at a time whatever the
    video's length. After the iteration, `frames_decoded` is the number of frames the stream really held (a
    file cut short holds fewer than its header says; decoding stops at the cut, as in `decode_video`).
    """

    def __init__(self, path: str | Path, wanted):
        self.path = Path(path)
        self.wanted = wanted  # anything supporting `index in wanted`
        self.frames_decoded = 0

    def __iter__(self):
        with _open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            index = -1
            try:
                for frame in container.decode(stream):
                    index += 1
                    self.frames_decoded = index + 1
                    if index in self.wanted:
                        yield index, frame.to_ndarray(format="rgb24")
            except av.FFmpegError as e:
                if index < 0:
                    raise VideoReadError(f"cannot decode {self.path} (truncated or corrupt?): {e}") from e
        if self.frames_decoded == 0:
            raise VideoReadError(f"{self.path} holds no decodable frames")


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
    # bitexact: no muxer fields that change from run to run (Matroska's random segment and track UIDs)
    with av.open(str(path), mode="w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=_as_fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pixel_format
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        for image in frames:
            # The encoder gets frames already in its pixel format (converting inside the encoder path made more
            # H.264 files differ between runs; bgr0 is a reordering of the RGB bytes).
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pixel_format)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _as_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
