"""One video file -> one stored example (its frames as JPEGs, label, id, frame rate), or why it is skipped.

The one rule both builds share: the in-process build (`builders.py`) and the Beam build (`beam_build.py`) call
`example_or_skip` per video.
"""
from __future__ import annotations

import tensorflow as tf

from timesformer_jax.data import annotations
from timesformer_jax.data.video_io import VideoReadError, decode_video
from timesformer_jax.user_files import printable


def video_example(entry: annotations.Entry, short_side: int, jpeg_quality: int) -> tuple[dict, str | None]:
    """(one stored example, why it is partial or None). The example: every frame of the video as displayed
    (shorter side at most `short_side`) as a JPEG, its label, id and frame rate; it is partial when the file read
    only in part (frames missing against its header, corrupt packets skipped, a mid-stream size change).
    VideoReadError when the file cannot be decoded at all. Shared by the in-process and Beam builds."""
    video = decode_video(entry.path, short_side)
    example = {
        "video": [tf.io.encode_jpeg(frame, quality=jpeg_quality).numpy() for frame in video.frames],
        "label": entry.label,
        "video_id": entry.video_id,
        "fps": video.fps,
    }
    return example, "; ".join(video.problems) or None


def example_or_skip(entry: annotations.Entry, short_side: int, jpeg_quality: int):
    """`video_example(...)`, or the reason the video is skipped (a string naming the file): whatever goes wrong
    with one file stays that file's skip line."""
    try:
        return video_example(entry, short_side, jpeg_quality)
    except VideoReadError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - one file's failure never stops the build
        return f"{printable(str(entry.path))}: {type(e).__name__}: {e}"
