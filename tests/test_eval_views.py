"""Inference's test views (NumPy, `data.eval_views`) are the eval pipeline's (TensorFlow, `data.pipeline`).

Both implement one rule; these tests hold them together on frames decoded from encoded videos (and on the
analytic edge cases: upscales, portrait frames, one frame). The light install runs inference without TensorFlow:
the last test classifies a video in a process where importing TensorFlow fails.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from timesformer_jax.data import eval_views
from timesformer_jax.data.clip_config import ClipConfig
from timesformer_jax.data.pipeline import eval_view_clips, eval_view_indices
from timesformer_jax.data.transforms import resize_short_side
from timesformer_jax.data.video_io import decode_video, probe_video, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def textured_video(path, count, height, width, fps):
    """A random texture sliding one pixel right per frame, under a frame-dependent tint."""
    rng = np.random.default_rng(height * width)
    texture = rng.integers(0, 256, (height, width + count, 3), dtype=np.uint8)
    frames = np.stack([np.roll(texture, t, axis=1)[:, :width] // 2 + (t * 7) % 100 for t in range(count)])
    write_video(path, frames.astype(np.uint8), fps=fps)
    return path


CONFIGS = [
    ClipConfig(num_frames=4, sampling_rate=8, crop_size=32, num_temporal_views=1, num_spatial_crops=3),
    ClipConfig(num_frames=4, sampling_rate=5, crop_size=48, num_temporal_views=3, num_spatial_crops=1),
    ClipConfig(num_frames=3, sampling="segment", crop_size=32, num_temporal_views=2, num_spatial_crops=3),
    ClipConfig(num_frames=4, sampling_rate=4, crop_size=32, num_temporal_views=2, antialias=True),
    ClipConfig(num_frames=2, sampling_rate=2, crop_size=112, train_scale=(112, 320)),  # an upscale
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    return [textured_video(root / "landscape.mp4", 45, 72, 128, 30.0),
            textured_video(root / "portrait.webm", 30, 96, 54, 12.5)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.sampling}-{c.num_views}v-{c.crop_size}-aa{c.antialias}")
def test_numpy_views_are_the_eval_pipelines_on_decoded_frames(videos, config):
    for path in videos:
        info = probe_video(path)
        frames = decode_video(path, short_side=None).frames
        ours = eval_views.view_indices(config, info.num_frames, info.fps)
        np.testing.assert_array_equal(ours, eval_view_indices(config, info.num_frames, info.fps).numpy())
        picked = frames[ours.reshape(-1)]
        expected = eval_view_clips(tf.constant(picked), config).numpy()
        views = eval_views.view_clips(picked, config)
        assert views.shape == expected.shape == (config.num_views, config.num_frames, config.crop_size,
                                                 config.crop_size, 3)
        assert views.dtype == np.float32
        # normalised values span about 4.4 (0..255 over 0.225 * 255): float32 rounding of a resample, not a rule
        np.testing.assert_allclose(views, expected, atol=2e-4 if config.antialias else 2e-6, err_msg=str(path))


@pytest.mark.parametrize("length, fps", [(1, 30.0), (7, 0.0), (300, 24.0), (1000, 59.94)])
def test_indices_agree_on_short_unknown_rate_and_long_videos(length, fps):
    for config in CONFIGS:
        np.testing.assert_array_equal(eval_views.view_indices(config, length, fps),
                                      eval_view_indices(config, length, fps).numpy())


@pytest.mark.parametrize("shape", [(2, 1080, 1920, 3), (1, 33, 17, 3), (1, 5, 5, 3)])
@pytest.mark.parametrize("antialias", [False, True])
def test_resize_agrees_on_large_downscales_and_upscales(shape, antialias):
    frames = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    ours = eval_views.resize_short_side(frames, 24, antialias)
    theirs = resize_short_side(tf.constant(frames), 24, antialias).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=0.02 if antialias else 1e-4)  # in 0..255


def test_constant_frames_stay_constant():
    # Every resample weight set sums to one, so a flat frame is the same value everywhere: an analytic check.
    frames = np.full((1, 90, 160, 3), 77, np.uint8)
    for antialias in (False, True):
        np.testing.assert_allclose(eval_views.resize_short_side(frames, 20, antialias), 77.0, rtol=1e-6)


def test_predict_runs_where_tensorflow_cannot_be_imported(tmp_path):
    path = textured_video(tmp_path / "clip.mp4", 20, 48, 64, 10.0)
    script = textwrap.dedent(f"""
        import sys

        class NoTensorFlow:  # `import tensorflow` fails as where it is not installed (the light install)
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "tensorflow_datasets", "tensorboard"):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")

        sys.meta_path.insert(0, NoTensorFlow())
        import jax
        import numpy as np
        import timesformer_jax
        from timesformer_jax.inference import classify
        module = timesformer_jax.create_model("timesformer_tiny", num_classes=3, num_frames=2, image_size=32)
        params = jax.jit(module.init)(jax.random.key(0), np.zeros(module.clip_shape(), np.float32))["params"]
        model = timesformer_jax.PretrainedTimeSformer(module, params)
        (prediction,) = classify(model, {str(path)!r}, k=2)
        assert prediction.error is None, prediction.error
        print("top", prediction.top_k[0][1])
        assert "tensorflow" not in {{m.split(".")[0] for m in sys.modules}}
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "top " in result.stdout
