"""Video files in and out with PyAV (its wheels bundle FFmpeg with H.264, VP9 and MPEG-4 codecs).

Every reader returns frames as a player shows them: the display rotation of phone videos is applied, a stream
whose resolution changes mid-file is resized to one size, and a packet the decoder rejects is skipped (the frames
after it still come) and counted in a `DecodeReport`, which says what a read fell short of.

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

from timesformer_jax.user_files import printable

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


@dataclasses.dataclass
class DecodeReport:
    """What one pass over a video met: frames decoded, packets the decoder rejected (skipped: the frames after
    them still come), frames resized because the stream's resolution changed, and whether the container could not
    be read to its end (cut short)."""

    frames: int = 0
    corrupt_packets: int = 0
    resized_frames: int = 0
    cut_short: bool = False

    def problems(self, expected_frames: int | None = None) -> list[str]:
        """Sentences for a user: each way the pass fell short of a clean read of `expected_frames` frames."""
        out = []
        if expected_frames and self.frames < expected_frames:
            out.append(f"decoded {self.frames} of the {expected_frames} frames its header promises")
        if self.corrupt_packets:
            out.append(f"skipped {self.corrupt_packets} corrupt packet(s)")
        if self.cut_short:
            out.append("the file is cut short or its container is damaged")
        if self.resized_frames:
            out.append(f"its resolution changes mid-stream: {self.resized_frames} frame(s) resized to the first "
                       "frame's size")
        return out


@dataclasses.dataclass(frozen=True)
class DecodedVideo:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, as displayed
    fps: float
    report: DecodeReport = dataclasses.field(default_factory=DecodeReport)
    expected_frames: int = 0  # the container's frame count (0: it records none)

    @property
    def problems(self) -> list[str]:
        return self.report.problems(self.expected_frames)


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(H, W) with the shorter side scaled down to `short_side` (never up), aspect kept, both even."""
    if not short_side or min(height, width) <= short_side:
        return height, width
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that show `frame` as displayed (its display matrix's rotation)."""
    rotation = getattr(frame, "rotation", 0) or 0
    return round(rotation / 90) % 4


class _RgbFrames:
    """Decoded frames -> (H, W, 3) uint8 RGB arrays as displayed: the display rotation (phone videos) applied and
    every frame at one size, `size` or else the first converted frame's (shorter side at most `short_side`), so a
    stream whose resolution changes mid-file still stacks. `report.resized_frames` counts frames of another size."""

    def __init__(self, report: DecodeReport, size: tuple[int, int] | None = None, short_side: int | None = None):
        self.report, self.size, self.short_side = report, size, short_side
        self._native = None  # (H, W) displayed of the first frame: frames of another size count as resized

    def __call__(self, frame) -> np.ndarray:
        turns = _quarter_turns(frame)
        shown = (frame.height, frame.width) if turns % 2 == 0 else (frame.width, frame.height)
        if self._native is None:
            self._native = shown
        elif shown != self._native:
            self.report.resized_frames += 1
        if self.size is None:
            self.size = resized_shape(*shown, self.short_side)
        height, width = self.size if turns % 2 == 0 else self.size[::-1]
        if (frame.height, frame.width) == (height, width):
            rgb = frame.to_ndarray(format="rgb24")
        else:
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _decoded(container, stream, report: DecodeReport):
    """The decoded frames of `stream`, in order. A packet the decoder rejects is skipped and counted (a corrupt
    section costs its own frames, not the rest of the file); a container that cannot be read further ends the
    stream (`report.cut_short`)."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError:
            report.cut_short = True
            break
        try:
            frames = stream.decode(packet)
        except av.FFmpegError:
            report.corrupt_packets += 1
            continue
        for frame in frames:
            report.frames += 1
            yield frame


def _open(path: Path):
    try:
        if path.is_dir():
            raise VideoReadError(f"{printable(path)} is a folder that cannot be listed (permission denied?)")
        if not path.is_file():
            raise VideoReadError(f"no video file at {printable(path)}")
        if path.stat().st_size == 0:
            raise VideoReadError(f"{printable(path)} is empty (0 bytes)")
        container = av.open(str(path))
    except PermissionError as e:
        raise VideoReadError(f"cannot read {printable(path)}: permission denied") from e
    except (av.FFmpegError, OSError) as e:
        raise VideoReadError(f"cannot decode {printable(path)} as a video (truncated or not a video?): {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{printable(path)} has no video stream (truncated, or not a video?)")
    return container


def _container_frames(stream) -> int:
    return int(stream.frames or 0)


def decode_video(path: str | Path, short_side: int | None = 320) -> DecodedVideo:
    """All frames of the first video stream, RGB as displayed (rotation applied), shorter side at most
    `short_side` (None: source size); frames of a mid-stream resolution change are resized to the first frame's
    size. Corrupt packets are skipped; `DecodedVideo.problems` says what fell short (frames missing against the
    header, corrupt packets, a cut, resized frames)."""
    path = Path(path)
    report = DecodeReport()
    to_rgb = _RgbFrames(report, short_side=short_side)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        expected = _container_frames(stream)
        frames = [to_rgb(frame) for frame in _decoded(container, stream, report)]
    if not frames:
        detail = "; ".join(report.problems())
        raise VideoReadError(f"{printable(path)} holds no decodable frames" + (f" ({detail})" if detail else ""))
    return DecodedVideo(np.stack(frames), fps, report, expected)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    height: int  # of the first frame as displayed (rotation applied)
    width: int
    rotation: int = 0  # counter-clockwise degrees the display matrix turns the stored frames


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, frame rate and displayed size of the first video stream. The count is the container's when
    it records one (MP4), else the number of video packets (WebM, MKV); the size and rotation are the first
    decodable frame's."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        count = _container_frames(stream)
        first = next(_decoded(container, stream, DecodeReport()), None)
        if first is None:
            raise VideoReadError(f"{printable(path)} holds no decodable frames")
        turns = _quarter_turns(first)
        height, width = (first.height, first.width) if turns % 2 == 0 else (first.width, first.height)
        rotation = turns * 90
        if not count:
            try:
                container.seek(0)
                count = sum(1 for packet in container.demux(stream) if packet.size)
            except av.FFmpegError as e:
                raise VideoReadError(f"cannot read the packets of {printable(path)} (truncated or corrupt?): {e}") from e
    if count < 1:
        raise VideoReadError(f"{printable(path)} holds no video frames")
    return VideoInfo(int(count), float(rate) if rate else 0.0, int(height), int(width), rotation)


def read_frames(path: str | Path, indices: Sequence[int], fps: float, size: tuple[int, int] | None = None,
                report: DecodeReport | None = None) -> dict[int, np.ndarray]:
    """{index: (H, W, 3) uint8 RGB frame as displayed} for the distinct frame `indices` (0-based, in decode
    order) of a video at `fps`, at full resolution (or `size` (H, W), e.g. the probed size, so that a stream whose
    resolution changes gives frames of one size). Seeks to the keyframe at or before the first index and stops
    after the last, so the cost is that of the span between them. Frames missing from the result (a file shorter
    than its header says, a corrupt section) are the caller's to handle; `report`, when given, is filled in."""
    path = Path(path)
    wanted = {int(i) for i in indices}
    if not wanted:
        return {}
    report = DecodeReport() if report is None else report
    frames = _decode_span(path, wanted, fps, size, report, seek=min(wanted) > 0 and fps > 0)
    if frames is None:  # no timestamps to place the first frame after a seek: decode from the start
        report.__init__()  # nothing to keep from the failed attempt
        frames = _decode_span(path, wanted, fps, size, report, seek=False)
    return frames


def _decode_span(path: Path, wanted: set[int], fps: float, size, report: DecodeReport,
                 seek: bool) -> dict[int, np.ndarray] | None:
    first, last = min(wanted), max(wanted)
    frames: dict[int, np.ndarray] = {}
    to_rgb = _RgbFrames(report, size)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base, start = stream.time_base, stream.start_time or 0
        if seek:
            # backward=True lands on the keyframe at or before the target; decoding resumes from there.
            try:
                container.seek(start + int(first / fps / base), stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:
                return None
        index = None
        for frame in _decoded(container, stream, report):
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
                frames[index] = to_rgb(frame)
    return frames


def count_frames(path: str | Path) -> DecodeReport:
    """One decoding pass over a whole video, converting nothing: how many frames really decode (memory holds
    one frame at a time, however long the file)."""
    path = Path(path)
    report = DecodeReport()
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in _decoded(container, stream, report):
            pass
    return report


class FrameStream:
    """The frames of a video whose indices `wanted` names, decoded once, in order, from the start.

    Iterating yields `(index, (H, W, 3) uint8 RGB as displayed)` for the wanted frames only (at `size` (H, W)
    when given, else the first converted frame's size); every other frame is decoded (the codec needs it) but
    never converted to RGB or kept, so memory holds one frame at a time whatever the video's length. Corrupt
    packets are skipped. After the iteration, `frames_decoded` is the number of frames the stream really held (a
    file cut short holds fewer than its header says) and `report` what the pass met.
    """

    def __init__(self, path: str | Path, wanted, size: tuple[int, int] | None = None):
        self.path = Path(path)
        self.wanted = wanted  # anything supporting `index in wanted`
        self.size = size
        self.report = DecodeReport()

    @property
    def frames_decoded(self) -> int:
        return self.report.frames

    def __iter__(self):
        self.report = DecodeReport()
        to_rgb = _RgbFrames(self.report, self.size)
        with _open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(_decoded(container, stream, self.report)):
                if index in self.wanted:
                    yield index, to_rgb(frame)
        if self.report.frames == 0:
            raise VideoReadError(f"{printable(self.path)} holds no decodable frames")


def write_video(path: str | Path, frames: np.ndarray | Sequence[np.ndarray], fps: float = 25.0,
                display_rotation: int = 0) -> None:
    """Encode RGB frames (T, H, W, 3) uint8 with the codec of the path's suffix (`CODECS`); H and W even.
    `display_rotation`: counter-clockwise degrees a player turns the frames (a phone video's display matrix)."""
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
        if display_rotation:
            stream.set_display_rotation(display_rotation)
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
