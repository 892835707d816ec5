"""Videos as real files come: rotated phone videos, a resolution change mid-stream, a corrupt middle section, a
long file cut short, folders that cannot be read. Every reader returns frames as displayed, reads what decodes,
says what fell short, and one bad file never stops the others."""
import json
import os
import tracemalloc

import av
import numpy as np
import pytest

from timesformer_jax.data.video_io import FrameStream, count_frames, decode_video, probe_video, read_frames, write_video
from timesformer_jax.inference.classify import protocol_for, read_views
from timesformer_jax.inference.inputs import named_video_files


def striped_frames(count, height, width):
    """(count, H, W, 3): a white stripe along the left edge, the rest dark grey with a frame-dependent level."""
    frames = np.full((count, height, width, 3), 40, np.uint8)
    frames += (np.arange(count, dtype=np.uint8) * 3)[:, None, None, None]
    frames[:, :, : width // 8] = 255
    return frames


def test_rotated_phone_video_is_read_as_displayed(tmp_path):
    # A -90 degree display matrix: players turn the stored 32 x 64 frames a quarter turn clockwise.
    frames = striped_frames(6, 32, 64)
    path = tmp_path / "phone.mp4"
    write_video(path, frames, fps=10, display_rotation=-90)
    shown = np.rot90(frames, k=-1, axes=(1, 2))  # independent reference: numpy's clockwise quarter turn
    assert shown.shape == (6, 64, 32, 3)
    decoded = decode_video(path, short_side=None)
    assert decoded.frames.shape == shown.shape
    assert np.abs(decoded.frames.astype(int) - shown).mean() < 4
    assert decoded.frames[:, :4].mean() > 200 and decoded.frames[:, -8:].mean() < 120  # the stripe is on top
    info = probe_video(path)
    assert (info.height, info.width, info.rotation) == (64, 32, 270)
    picked = read_frames(path, [2, 5], info.fps)
    np.testing.assert_array_equal(picked[5], decoded.frames[5])
    streamed = dict(FrameStream(path, {0, 3}))
    np.testing.assert_array_equal(streamed[3], decoded.frames[3])
    halved = decode_video(path, short_side=16)
    assert halved.frames.shape == (6, 32, 16, 3)


def write_mpeg_segment(path, height, width, levels, fps=25):
    with av.open(str(path), "w", format="mpeg") as container:
        stream = container.add_stream("mpeg2video", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for level in levels:
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), level, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture
def size_change_video(tmp_path):
    """An MPEG program stream of 64 x 48 frames, then 128 x 96 ones (two encodings joined, as cameras and
    streams concatenate them)."""
    first, second = tmp_path / "a.mpg", tmp_path / "b.mpg"
    write_mpeg_segment(first, 48, 64, [60] * 10)
    write_mpeg_segment(second, 96, 128, [200] * 10)
    path = tmp_path / "joined.mpg"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def test_resolution_change_mid_stream_is_resized_to_the_first_frame(size_change_video):
    decoded = decode_video(size_change_video, short_side=None)
    assert decoded.frames.shape[1:] == (48, 64, 3)
    # Uniform frames stay uniform through any resize: the second segment's level is kept.
    assert abs(decoded.frames[1].mean() - 60) < 4 and abs(decoded.frames[-1].mean() - 200) < 4
    assert decoded.report.resized_frames >= 8
    assert any("resolution changes mid-stream" in p for p in decoded.problems)
    streamed = dict(FrameStream(size_change_video, set(range(len(decoded.frames)))))
    assert {frame.shape for frame in streamed.values()} == {(48, 64, 3)}


def write_corrupt_middle(path, count=100):
    """An H.264 .mp4 whose bytes between 40% and 60% are randomised (its index, at the end, intact)."""
    rng = np.random.default_rng(0)
    frames = (np.cumsum(rng.integers(0, 255, (count, 48, 64, 3)), axis=0) // 4).astype(np.uint8)
    write_video(path, frames, fps=25)
    data = bytearray(path.read_bytes())
    start, end = int(len(data) * 0.4), int(len(data) * 0.6)
    data[start:end] = np.random.default_rng(1).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def frames_decoding_past_bad_packets(path):
    """Independent count: PyAV's packet loop, skipping every packet the decoder rejects."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                count += len(stream.decode(packet))
            except av.FFmpegError:
                pass
    return count


def test_corrupt_middle_section_is_skipped_and_reported(tmp_path):
    path = tmp_path / "bikes.mp4"
    write_corrupt_middle(path)
    expected = frames_decoding_past_bad_packets(path)
    assert 50 < expected < 100  # the file really lost frames, and more than half survive the damage
    decoded = decode_video(path, short_side=None)
    assert len(decoded.frames) == expected
    assert decoded.report.corrupt_packets > 0
    assert f"decoded {expected} of the 100 frames its header promises" in decoded.problems
    # A view spanning the whole file (4 frames, 30 apart at 30 fps = 100 frames at 25 fps) crosses the damage.
    warnings = []
    views = read_views(path, protocol_for_tiny(sampling_rate=30), warnings)
    assert views.shape[0] == 3 and np.isfinite(views).all()
    assert len(warnings) == 1
    assert "corrupt packet" in warnings[0] or f"decoded {expected} of the 100" in warnings[0], warnings


def protocol_for_tiny(sampling_rate=2):
    import timesformer_jax

    return protocol_for(timesformer_jax.create_model("timesformer_tiny"), sampling_rate=sampling_rate)


def test_truncated_long_file_is_read_in_bounded_memory(tmp_path):
    # 300 frames of 240 x 320 cut at 60%: the views need 3 crops x 4 frames, not the whole file.
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (1, 240, 320, 3), dtype=np.uint8), 300, axis=0)
    frames[:, :8] = np.arange(300, dtype=np.uint8)[:, None, None, None]
    path = tmp_path / "long.avi"  # AVI's header counts the frames; the cut leaves it promising all 300
    write_video(path, frames, fps=30)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    decodable = count_frames(path).frames
    assert 0 < decodable < 300
    frame_bytes = 240 * 320 * 3
    warnings = []
    tracemalloc.start()
    views = read_views(path, protocol_for_tiny(sampling_rate=60), warnings)  # frames 30..270: past the cut
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert views.shape[:2] == (3, 4)
    assert peak < 20 * frame_bytes, f"peak {peak / frame_bytes:.0f} frames held"  # the whole file: 300 * 0.6
    assert f"decoded {decodable} of the 300 frames" in warnings[0]


def test_unreadable_folders_are_listed_in_their_place(tmp_path, monkeypatch):
    # Tests run as root, which reads any file: the permission error is simulated where the walk lists folders.
    (tmp_path / "ok").mkdir()
    (tmp_path / "locked").mkdir()
    write_video(tmp_path / "ok" / "a.mp4", striped_frames(4, 16, 16), fps=10)
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    named = named_video_files([tmp_path])
    assert [name for _, name in named] == ["locked", "ok__a.mp4"]
    with pytest.raises(Exception, match="locked is a folder that cannot be listed"):
        probe_video(named[0][0])


def test_output_names_never_collide(tmp_path):
    for relative in ("d1/clip.mp4", "d2/clip.mp4", "f/x.mp4", "f/x.mkv", "f/sub/y.mp4", "f/sub__y.mp4"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    named = named_video_files([tmp_path / "d1" / "clip.mp4", tmp_path / "d2" / "clip.mp4", tmp_path / "f"])
    names = [name for _, name in named]
    assert names == ["clip.mp4", "clip.mp4~2", "sub__y.mp4", "sub__y.mp4~2", "x.mkv", "x.mp4"]
    assert len(set(names)) == len(names)


def test_prediction_json_carries_the_warnings(tmp_path):
    import timesformer_jax
    from timesformer_jax.inference.classify import classify

    module = timesformer_jax.create_model("timesformer_tiny")
    import jax
    import jax.numpy as jnp

    params = module.init(jax.random.PRNGKey(0), jnp.zeros(module.clip_shape()))["params"]
    model = timesformer_jax.PretrainedTimeSformer(module, params)
    corrupt = tmp_path / "bikes.mp4"
    write_corrupt_middle(corrupt)
    clean = tmp_path / "clean.mp4"
    write_video(clean, striped_frames(40, 32, 32), fps=25)
    weird = tmp_path / "weird.mp4"
    weird.write_bytes(b"\x00" * 100)
    predictions = classify(model, [corrupt, weird, clean], protocol_for(module, sampling_rate=30))
    records = [json.loads(json.dumps(p.to_json())) for p in predictions]
    assert records[0]["warnings"] and "top_k" in records[0]
    assert "error" in records[1]
    assert "warnings" not in records[2] and "top_k" in records[2]
