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
