"""Long videos and attention maps: sliding-window plans against hand-computed windows, window features against
the model on the eval pipeline's clip, bounded decoding memory, resumable folders with a bad file, attention
rollout against a rollout written out independently, and a model forced to attend to one known patch."""
import importlib
import json

import flax.linen as nn
import jax
import numpy as np
import pytest
import tensorflow as tf

from timesformer_jax.convert.converted_checkpoint import save_converted
from timesformer_jax.pretrained import PretrainedTimeSformer
from timesformer_jax.data.pipeline import eval_view_clips
from timesformer_jax.data.video_io import decode_video, write_video
from timesformer_jax.inference.attention_maps import upsample_map
from timesformer_jax.inference.feature_folder import extract_features
from timesformer_jax.inference.features import FeatureExtractor
from timesformer_jax.inference.windows import plan_windows
from timesformer_jax.inference.rollout import attention_rollout, captured_weights, rollout_from_weights
from timesformer_jax.model import TimeSformer

TINY = dict(num_classes=4, image_size=32, num_frames=4, patch_size=8, hidden_size=16, depth=2, num_heads=2,
            mlp_dim=32)


def tool(name):
    """The `timesformer` command's module of a tools/ script name."""
    module = {"extract_features": "features", "visualize_attention": "attention"}.get(name, name)
    return importlib.import_module(f"timesformer_jax.cli.{module}")


def random_model(seed=0, **fields):
    module = TimeSformer(**{**TINY, **fields})
    shape = module.clip_shape()
    params = nn.meta.unbox(module.init(jax.random.key(seed), np.zeros(shape, np.float32))["params"])
    # Larger than the init's 0.02 so that attention is far from uniform and every test has something to see.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    params = jax.tree.unflatten(treedef, [leaf + 0.3 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)])
    return PretrainedTimeSformer(module, params)


def moving_square_video(path, num_frames, fps=10.0, height=40, width=56, seed=0):
    """A light square crossing a textured scene: frames differ, so windows differ."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    for t in range(num_frames):
        x = (3 * t) % (width - 8)
        frames[t, 10:18, x : x + 8] = 230
    write_video(path, frames, fps)
    return path


# --- windows ---------------------------------------------------------------------------------------------------

def test_windows_of_a_long_video_by_hand():
    # 100 frames at 25 fps; 8 frames at rate 4 (defined at 30 fps) span 8 * 4 * 25 / 30 = 26 2/3 frames.
    # Starts every 1 s = 25 frames while start + 26 2/3 <= 100: 0, 25, 50 (75 + 26 2/3 > 100).
    plan = plan_windows(100, 25.0, num_frames=8, sampling_rate=4, stride_seconds=1.0)
    assert plan.num_windows == 3
    np.testing.assert_allclose(plan.start_seconds, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(plan.end_seconds, [(0 + 80 / 3) / 25, (25 + 80 / 3) / 25, (50 + 80 / 3) / 25])
    # Window 1: 8 positions evenly over [25, 25 + 26 2/3 - 1], step 25 2/3 / 7 = 3 2/3: 25, 28.67, 32.33, 36, ...
    assert plan.indices[1].tolist() == [25, 28, 32, 36, 39, 43, 47, 50]
    assert plan.indices[0].tolist() == [0, 3, 7, 11, 14, 18, 22, 25]


def test_window_that_ends_exactly_at_the_last_frame_is_kept():
    # 8 x 2 at 30 fps spans 16 frames; stride 0.5 s = 15 frames: starts 0, 15, 30 (30 + 16 = 46 <= 46).
    plan = plan_windows(46, 30.0, num_frames=8, sampling_rate=2, stride_seconds=0.5)
    assert plan.starts.tolist() == [0.0, 15.0, 30.0]
    assert plan.indices[-1].tolist() == [30, 32, 34, 36, 38, 40, 42, 45]  # 30 + 15 * k / 7, truncated


def test_video_shorter_than_one_window_gets_one_clamped_window():
    # 10 frames at 30 fps, 8 x 4 spans 32: one window, positions 0, 4.43, 8.86, 13.3, ... clamped to frame 9.
    plan = plan_windows(10, 30.0, num_frames=8, sampling_rate=4, stride_seconds=1.0)
    assert plan.num_windows == 1
    assert plan.indices[0].tolist() == [0, 4, 8, 9, 9, 9, 9, 9]
    np.testing.assert_allclose([plan.start_seconds[0], plan.end_seconds[0]], [0.0, 10 / 30])


def test_default_stride_is_half_a_window():
    plan = plan_windows(300, 30.0, num_frames=8, sampling_rate=8)  # 64-frame windows, stride 32
    assert plan.starts.tolist() == [32.0 * k for k in range(8)]  # 7 * 32 + 64 = 288 <= 300 < 8 * 32 + 64


# --- features --------------------------------------------------------------------------------------------------

def test_window_features_are_the_models_pre_logits_on_the_eval_clip(tmp_path):
    model = random_model()
    path = moving_square_video(tmp_path / "long.mp4", 60)
    extractor = FeatureExtractor(model, stride_seconds=0.7, batch_size=3, sampling_rate=9)
    result = extractor.extract(path)
    frames = decode_video(path, short_side=None).frames
    assert result.plan.num_windows == len(plan_windows(60, 10.0, 4, 9, 0.7).starts) > 3
    forward = jax.jit(lambda params, clip: model.module.apply({"params": params}, clip, mutable="intermediates"))
    for window in range(result.plan.num_windows):
        clip = eval_view_clips(tf.constant(frames[result.plan.indices[window]]), extractor.config).numpy()
        logits, state = forward(model.params, clip)
        np.testing.assert_allclose(result.features[window], state["intermediates"]["pre_logits"][0][0],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(result.logits[window], logits[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.embedding, result.features.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("attention_type", ["divided_space_time", "space_only"])
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_block_features_are_that_blocks_outputs(tmp_path, attention_type, pool):
    model = random_model(attention_type=attention_type)
    path = moving_square_video(tmp_path / "v.mp4", 20)
    extractor = FeatureExtractor(model, layer="block_0", pool=pool, stride_seconds=1.0, sampling_rate=9)
    result = extractor.extract(path)
    frames = decode_video(path, short_side=None).frames
    clip = eval_view_clips(tf.constant(frames[result.plan.indices[0]]), extractor.config).numpy()
    _, state = model.module.apply({"params": model.params}, clip, mutable="intermediates")
    block = state["intermediates"]["blocks_0"]
    # By hand: the cls token (one per frame for space-only, averaged as its head does) or the patch-token mean.
    if pool == "cls":
        expected = np.asarray(block["cls"][0]).reshape(-1, TINY["hidden_size"]).mean(axis=0)
    else:
        expected = np.asarray(block["tokens"][0]).reshape(-1, TINY["hidden_size"]).mean(axis=0)
    np.testing.assert_allclose(result.features[0], expected, rtol=1e-5, atol=1e-5)


def test_bad_layer_names_the_choices():
    with pytest.raises(ValueError, match="pre_logits' or 'block_N' with 0 <= N < 2"):
        FeatureExtractor(random_model(), layer="block_2")


@pytest.mark.slow
def test_long_video_is_decoded_in_bounded_memory(tmp_path):
    # 900 frames; windows of 4 frames spanning 12 frames, stride 6: frames held at once stay within two
    # overlapping windows' samples, whatever the length.
    path = moving_square_video(tmp_path / "long.mp4", 900, fps=30.0, height=32, width=32)
    extractor = FeatureExtractor(random_model(), stride_seconds=0.2, batch_size=16, sampling_rate=3)
    result = extractor.extract(path)
    assert result.plan.num_windows == 1 + (900 - 12) // 6
    assert 4 <= result.peak_frames_held <= 2 * 4


def test_folder_with_a_bad_file_is_resumable(tmp_path):
    model = random_model()
    checkpoint = save_converted(tmp_path / "ckpt", model.config, model.params, {"source": "test"})
    videos = tmp_path / "videos"
    moving_square_video(videos / "a" / "one.mp4", 30)
    moving_square_video(videos / "two.mp4", 45, seed=1)
    (videos / "broken.mp4").write_bytes(b"not a video at all" * 10)
    out = tmp_path / "features"
    cli = tool("extract_features")
    args = ["--checkpoint", str(checkpoint), "--output", str(out), "--sampling-rate", "9", "--stride-seconds",
            "0.5", "--plot", str(videos)]
    assert cli.main(args) == 2  # some failed
    index = json.loads((out / "index.json").read_text())["videos"]
    assert set(index) == {"a__one.mp4", "two.mp4", "broken.mp4"}
    assert "error" in index["broken.mp4"] and "broken.mp4" in index["broken.mp4"]["error"]
    two = index["two.mp4"]
    with np.load(out / "two.mp4.npz") as stored:
        assert stored["features"].shape == (two["num_windows"], TINY["hidden_size"])
        assert stored["logits"].shape == (two["num_windows"], TINY["num_classes"])
        assert stored["frame_indices"].shape == (two["num_windows"], TINY["num_frames"])
        np.testing.assert_allclose(stored["embedding"], stored["features"].mean(axis=0), rtol=1e-6)
    lines = (out / "two.mp4.timeline.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["start_s", "end_s", "label", "probability"]
    assert len(lines) == 1 + two["num_windows"]
    assert (out / "two.mp4.timeline.png").stat().st_size > 0
    before = (out / "two.mp4.npz").stat().st_mtime_ns
    messages = []
    extract_features(str(checkpoint), [videos], out, sampling_rate=9, stride_seconds=0.5, log=messages.append)
    assert (out / "two.mp4.npz").stat().st_mtime_ns == before
    assert "0 video(s) done, 2 already done before with the same settings, 1 failed" in messages[-1]


@pytest.mark.slow  # ~27 s on a 2-core CPU: three runs of the folder tool
def test_features_of_same_named_videos_never_collide_and_stale_results_are_recomputed(tmp_path):
    model = random_model()
    checkpoint = save_converted(tmp_path / "ckpt", model.config, model.params, {"source": "test"})
    one, two = tmp_path / "d1" / "clip.mp4", tmp_path / "d2" / "clip.mp4"
    moving_square_video(one, 30)
    moving_square_video(two, 45, seed=1)
    moving_square_video(tmp_path / "f" / "x.mp4", 20, seed=2)
    moving_square_video(tmp_path / "f" / "x.avi", 25, seed=3)
    out = tmp_path / "features"
    messages = []
    inputs = [one, two, tmp_path / "f"]
    extract_features(str(checkpoint), inputs, out, sampling_rate=9, log=messages.append)
    index = json.loads((out / "index.json").read_text())["videos"]
    assert sorted(index) == ["clip.mp4", "clip.mp4~2", "x.avi", "x.mp4"]
    lengths = {name: int(np.load(out / f"{name}.npz")["num_frames"]) for name in index}
    assert lengths == {"clip.mp4": 30, "clip.mp4~2": 45, "x.avi": 25, "x.mp4": 20}
    # Another layer: every stored result is stale and recomputed, not reused.
    messages.clear()
    extract_features(str(checkpoint), inputs, out, sampling_rate=9, layer="block_0", log=messages.append)
    assert "4 video(s) done, 0 already done before" in messages[-1]
    assert str(np.load(out / "x.mp4.npz")["layer"]) == "block_0:cls"
    assert any("recomputing (layer changed" in m for m in messages)
    # Other weights at the same path: recomputed too; the same settings again: reused.
    other = random_model(seed=5)
    save_converted(tmp_path / "ckpt", other.config, other.params, {"source": "test"}, overwrite=True)
    messages.clear()
    extract_features(str(checkpoint), inputs, out, sampling_rate=9, layer="block_0", log=messages.append)
    assert "4 video(s) done" in messages[-1] and any("weights_sha256" in m for m in messages)
    messages.clear()
    extract_features(str(checkpoint), inputs, out, sampling_rate=9, layer="block_0", log=messages.append)
    assert "0 video(s) done, 4 already done before with the same settings" in messages[-1]


# --- attention rollout -----------------------------------------------------------------------------------------

def independent_divided_rollout(weights, frames, grid_h, grid_w):
    """Attention rollout of divided space-time attention written out with explicit loops over the official
    forward: token 0 is cls, patch (t, h, w) is 1 + (t * H + h) * W + w. Temporal stage: patch (t, h, w) attends
    to (t', h, w); cls untouched. Spatial stage: frame t's group is [cls copy, its H * W patches]; cls becomes
    the mean of its T copies. Each stage with its residual: 0.5 A + 0.5 I; block = spatial @ temporal."""
    n = 1 + frames * grid_h * grid_w

    def token(t, h, w):
        return 1 + (t * grid_h + h) * grid_w + w

    rollout = np.eye(n)
    for temporal, spatial in weights:
        temporal, spatial = temporal.mean(axis=1), spatial.mean(axis=1)
        a_time = np.zeros((n, n))
        a_time[0, 0] = 1.0
        for h in range(grid_h):
            for w in range(grid_w):
                group = h * grid_w + w  # the official "(b h w) t" grouping
                for t in range(frames):
                    for t2 in range(frames):
                        a_time[token(t, h, w), token(t2, h, w)] = temporal[group, t, t2]
        a_space = np.zeros((n, n))
        for t in range(frames):
            cells = [(h, w) for h in range(grid_h) for w in range(grid_w)]
            a_space[0, 0] += spatial[t, 0, 0] / frames
            for j, (h, w) in enumerate(cells):
                a_space[0, token(t, h, w)] += spatial[t, 0, 1 + j] / frames
                a_space[token(t, h, w), 0] = spatial[t, 1 + j, 0]
                for k, (h2, w2) in enumerate(cells):
                    a_space[token(t, h, w), token(t, h2, w2)] = spatial[t, 1 + j, 1 + k]
        block = (0.5 * a_space + 0.5 * np.eye(n)) @ (0.5 * a_time + 0.5 * np.eye(n))
        rollout = block @ rollout
    return rollout


def independent_joint_rollout(weights):
    rollout = None
    for (joint,) in weights:
        a = joint.mean(axis=1)[0]
        block = 0.5 * a + 0.5 * np.eye(len(a))
        rollout = block if rollout is None else block @ rollout
    return rollout


def test_divided_rollout_equals_the_independent_one():
    model = random_model(image_size=(16, 24), num_frames=3)
    clip = np.random.default_rng(0).normal(size=(1, 3, 16, 24, 3)).astype(np.float32)
    result = attention_rollout(model, clip)
    weights = captured_weights(model.module, model.params, clip)
    expected = independent_divided_rollout(weights, 3, 2, 3)
    np.testing.assert_allclose(result.rollout, expected, atol=1e-10)
    np.testing.assert_allclose(result.rollout.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.final_map, expected[0, 1:].reshape(3, 2, 3), atol=1e-10)
    assert result.maps.shape == (2, 3, 2, 3)


def test_joint_rollout_equals_the_independent_one():
    # joint_space_time groups tokens as "(h w t)": the permutation back to (t, h, w) is the rollout's job.
    model = random_model(attention_type="joint_space_time", image_size=(16, 24), num_frames=3)
    clip = np.random.default_rng(1).normal(size=(1, 3, 16, 24, 3)).astype(np.float32)
    result = attention_rollout(model, clip)
    in_group_order = independent_joint_rollout(captured_weights(model.module, model.params, clip))
    # group position of patch (t, h, w) is 1 + (h * W + w) * T + t
    order = [0] + [1 + (h * 3 + w) * 3 + t for t in range(3) for h in range(2) for w in range(3)]
    np.testing.assert_allclose(result.rollout, in_group_order[np.ix_(order, order)], atol=1e-10)


@pytest.mark.parametrize("attention_type", ["space_only", "sparse_local_global", "axial"])
def test_rollout_rows_sum_to_one_for_every_scheme(attention_type):
    model = random_model(attention_type=attention_type)
    clip = np.random.default_rng(2).normal(size=(1, 4, 32, 32, 3)).astype(np.float32)
    result = attention_rollout(model, clip)
    np.testing.assert_allclose(result.rollout.sum(axis=1), 1.0, atol=1e-5)
    assert (result.rollout >= 0).all()
    assert result.maps.shape == (2, 4, 4, 4)
    assert 0 < result.final_map.sum() < 1


def forced_attention_params(module, marker_channel=0):
    """Parameters under which every query attends to the token whose patch is bright in `marker_channel`: the
    patch embedding copies that channel's patch mean into feature 0, every key is 40 x feature 0 after the
    norm, every query is 1 (its bias); values, projections and the MLP are zero, so tokens never change."""
    shapes = nn.meta.unbox(module.init(jax.random.key(0), np.zeros(module.clip_shape(), np.float32))["params"])
    params = jax.tree.map(np.zeros_like, shapes)
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: np.ones_like(x) if path[-1].key == "scale" else np.asarray(x), params)
    p = module.patch_size
    params["patch_embed"]["kernel"][:, :, marker_channel, 0] = 1.0 / (p * p)
    for i in range(module.depth):
        for name, stage in params[f"blocks_{i}"].items():
            if name.endswith("attn"):
                stage["qkv"]["kernel"][0, 1, :, 0] = 40.0  # key = 40 * normed feature 0
                stage["qkv"]["bias"][0, :, 0] = 1.0  # query = 1 on the same feature
    return params


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time", "space_only", "axial"])
def test_forced_attention_puts_the_maximum_on_the_marked_patch(attention_type):
    # A 3-frame clip on a 2 x 3 patch grid (T, H and W all differ, so any transposition moves the maximum),
    # dark except one patch of frame 1, row 1, column 2.
    module = TimeSformer(**{**TINY, "attention_type": attention_type, "image_size": (16, 24), "num_frames": 3})
    model = PretrainedTimeSformer(module, forced_attention_params(module))
    clip = np.full((1, 3, 16, 24, 3), -2.0, np.float32)
    clip[0, 1, 8:16, 16:24, 0] = 2.4
    result = attention_rollout(model, clip)
    assert np.unravel_index(result.final_map.argmax(), result.final_map.shape) == (1, 1, 2)
    pixels = upsample_map(result.final_map, 8)
    t, y, x = np.unravel_index(pixels.argmax(), pixels.shape)
    assert t == 1 and 8 <= y < 16 and 16 <= x < 24
    assert (pixels[1, 8:16, 16:24] == pixels.max()).all()


def test_visualize_tool_on_a_video_marks_the_bright_patch(tmp_path):
    module = TimeSformer(**{**TINY, "num_frames": 4})
    checkpoint = save_converted(tmp_path / "ckpt", {f: getattr(module, f) for f in TINY} | {"attention_type":
                                module.attention_type}, forced_attention_params(module), {"source": "test"})
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    frames[2, 0:8, 24:32] = 255  # frame 2, patch row 0, column 3
    write_video(tmp_path / "marked.mp4", frames, fps=30.0)
    out = tmp_path / "maps"
    assert tool("visualize_attention").main(["--checkpoint", str(checkpoint), "--output", str(out),
                                              "--sampling-rate", "1", "--per-block", str(tmp_path / "marked.mp4")]) == 0
    with np.load(out / "marked.attention.npz") as stored:
        final = stored["maps"][-1]
        assert stored["maps"].shape == (2, 4, 4, 4)
        assert stored["weights_block0_temporal"].shape == (16, 2, 4, 4)
        assert stored["frames"].shape == (4, 32, 32, 3)
    assert np.unravel_index(final.argmax(), final.shape) == (2, 0, 3)
    assert (out / "marked.attention.png").stat().st_size > 0
    from PIL import Image

    with Image.open(out / "marked.attention.gif") as gif:  # Pillow merges identical consecutive frames
        assert 2 <= gif.n_frames <= 4 and gif.size == (256, 256)


def test_visualize_tool_names_a_bad_video(tmp_path, capsys):
    model = random_model()
    checkpoint = save_converted(tmp_path / "ckpt", model.config, model.params, {"source": "test"})
    (tmp_path / "bad.mp4").write_bytes(b"\0" * 100)
    assert tool("visualize_attention").main(["--checkpoint", str(checkpoint), "--output", str(tmp_path / "o"),
                                              str(tmp_path / "bad.mp4")]) == 1
    assert "bad.mp4" in capsys.readouterr().err
