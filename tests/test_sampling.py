"""Clip sampling indices against values computed by hand from the official rules (see `sampling.py`)."""
import numpy as np
import pytest

from timesformer_jax.data.sampling import dense_indices, segment_indices, temporal_view_positions


def test_dense_clip_of_the_kinetics_config():
    # 8 frames at rate 32 on a 30 fps video of 300 frames: the clip spans 256 frames, the start moves over 44.
    # linspace(0, 255, 8) = 0, 36.43, 72.86, 109.29, 145.71, 182.14, 218.57, 255
    np.testing.assert_array_equal(dense_indices(300, 8, 32, 0.0), [0, 36, 72, 109, 145, 182, 218, 255])
    np.testing.assert_array_equal(dense_indices(300, 8, 32, 0.5), [22, 58, 94, 131, 167, 204, 240, 277])
    np.testing.assert_array_equal(dense_indices(300, 8, 32, 1.0), [44, 80, 116, 153, 189, 226, 262, 299])


def test_dense_clip_scales_with_frame_rate():
    # A 15 fps video covers the same 8.5 s with half the frames: clip of 128 frames, linspace(0, 127, 8).
    np.testing.assert_array_equal(dense_indices(200, 8, 32, 0.0, fps=15), [0, 18, 36, 54, 72, 90, 108, 127])


def test_short_video_repeats_its_last_frame():
    np.testing.assert_array_equal(dense_indices(100, 8, 32, 0.7), [0, 36, 72, 99, 99, 99, 99, 99])
    np.testing.assert_array_equal(dense_indices(1, 4, 2, 0.3), [0, 0, 0, 0])
    with pytest.raises(ValueError, match="at least one frame"):
        dense_indices(0, 8, 32, 0.0)


def test_test_views_follow_the_official_spacing():
    np.testing.assert_allclose(temporal_view_positions(3), [0, 1 / 3, 2 / 3])
    starts = [dense_indices(300, 8, 32, p)[0] for p in temporal_view_positions(3)]
    assert starts == [0, 14, 29]  # 44 * 1/3 = 14.67, 44 * 2/3 = 29.33


def test_segment_sampling():
    # 50 frames, 8 segments of 49/8 = 6.125: bounds round(6.125 * i) = 0 6 12 18 24 31 37 43 49
    starts = np.array([0, 6, 12, 18, 24, 31, 37, 43])
    ends = np.array([6, 12, 18, 24, 31, 37, 43, 49])
    np.testing.assert_array_equal(segment_indices(50, 8), (starts + ends) // 2)
    np.testing.assert_array_equal(segment_indices(50, 8, np.zeros(8)), starts)
    np.testing.assert_array_equal(segment_indices(50, 8, np.full(8, 0.999999)), ends)
    draws = np.stack([segment_indices(50, 8, np.random.default_rng(s).random(8)) for s in range(2000)])
    assert (draws >= starts).all() and (draws <= ends).all()
    assert (draws.min(0) == starts).all() and (draws.max(0) == ends).all()  # both bounds reachable
    # Fewer frames than segments: segments of 2/8 with bounds 0 0 0 1 1 1 2 2 2 (round half to even) repeat frames.
    np.testing.assert_array_equal(segment_indices(3, 8), [0, 0, 0, 1, 1, 1, 2, 2])


# The official loader (TimeSformer/PySlowFast `datasets/decoder.py`), for a fully decoded video:
#   clip_size = num_frames * sampling_rate * fps / target_fps            (target_fps = 30)
#   get_start_end_idx: delta = max(video_size - clip_size, 0); start = delta * clip_idx / num_clips;
#                      end = start + clip_size - 1
#   temporal_sampling: torch.linspace(start, end, num_frames), clamped to [0, video_size - 1], .long()
# Each case below is worked through by hand from those lines.
OFFICIAL_DENSE_CASES = [
    # 300 frames at 30 fps, 8 x 32 (K400), view 1 of 3: clip 256, delta 44, start 14.667, end 269.667,
    # step 255 / 7 = 36.43: 14.67 51.10 87.52 123.95 160.38 196.81 233.24 269.67
    ((300, 30.0, 32, 8, 1, 3), [14, 51, 87, 123, 160, 196, 233, 269]),
    # 250 frames at 25 fps, 8 x 32, view 2 of 3: clip 8 * 32 * 25 / 30 = 213.33, delta 36.67, start 24.44,
    # end 236.78, step 30.33: 24.44 54.78 85.11 115.44 145.78 176.11 206.44 236.78
    ((250, 25.0, 32, 8, 2, 3), [24, 54, 85, 115, 145, 176, 206, 236]),
    # 60 frames at 30 fps, 8 x 16, one view: clip 128 > 60, delta 0, 0 .. 127 step 18.14, clamped to 59
    ((60, 30.0, 16, 8, 0, 1), [0, 18, 36, 54, 59, 59, 59, 59]),
    # 300 frames at 60 fps, 8 x 5, view 7 of 10: clip 80, delta 220, start 154, end 233, step 11.29
    ((300, 60.0, 5, 8, 7, 10), [154, 165, 176, 187, 199, 210, 221, 233]),
]


@pytest.mark.parametrize("case, expected", OFFICIAL_DENSE_CASES)
def test_dense_views_match_the_official_loader(case, expected):
    length, fps, rate, frames, view, num_views = case
    position = temporal_view_positions(num_views)[view]
    np.testing.assert_array_equal(dense_indices(length, frames, rate, position, fps=fps), expected)


def test_segment_test_frames_match_the_official_ssv2_loader():
    # ssv2.py get_seq_frames: seg_size = (30 - 1) / 8 = 3.625; start/end = round(seg_size * i) (NumPy's round,
    # half to even: 14.5 -> 14): bounds 0 4 7 11 14 18 22 25 29; test frame (start + end) // 2.
    np.testing.assert_array_equal(segment_indices(30, 8), [2, 5, 9, 12, 16, 20, 23, 27])
