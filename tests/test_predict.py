"""Classifying video files: the frames and crops of the official test protocol, logits against a torch
re-implementation of the official test transform, labels, bad files next to good ones, the CLI's JSON."""
import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import timesformer_jax
from timesformer_jax.data.pipeline import eval_view_indices
from timesformer_jax.data.video_io import decode_video, probe_video, read_frames, write_video
from timesformer_jax.inference import classify, resolve_labels, protocol_for
from timesformer_jax.inference.classify import read_views
from timesformer_jax.inference.predict_files import predict_files
from torch_reference import official_state_dict, randomised_hf_model

def predict_cli():
    from timesformer_jax.cli import predict

    return predict


BITS = 9  # frame index coded in the pixels: a 3 x 3 grid of blocks in the top half, white = 1


def coded_frames(count, height, width, seed=0):
    """(count, H, W, 3) uint8: the top half codes the frame index in binary stripes, the bottom half is a fixed
    random texture (so resizes and crops have something to move)."""
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8), count, axis=0)
    for i in range(count):
        for b in range(BITS):
            rows, cols = _block(b, height, width)
            frames[i, rows, cols] = 255 if (i >> b) & 1 else 0
    return frames


def _block(bit, height, width, margin=0):
    row, col = divmod(bit, 3)
    top = height // 2
    return (slice(row * top // 3 + margin, (row + 1) * top // 3 - margin),
            slice(col * width // 3 + margin, (col + 1) * width // 3 - margin))


def frame_code(frame):
    height, width = frame.shape[:2]
    bits = [frame[_block(b, height, width, margin=2)].mean() > 127 for b in range(BITS)]
    return sum(int(bit) << b for b, bit in enumerate(bits))


def official_indices(video_size, fps, num_frames, sampling_rate, clip_idx, num_clips, target_fps=30):
    """The official loader for a decoded video, written out from `decoder.py` in exact arithmetic:
    get_start_end_idx (clip_size = num_frames * sampling_rate * fps / target_fps, delta = max(video_size -
    clip_size, 0), start = delta * clip_idx / num_clips, end = start + clip_size - 1), then temporal_sampling
    (linspace(start, end, num_frames), clamp to [0, video_size - 1], truncate). The official code runs the
    linspace in float32, which rounds the same way except at rare exact-integer positions (`sampling.py`)."""
    clip_size = Fraction(num_frames * sampling_rate) * Fraction(fps) / target_fps
    delta = max(video_size - clip_size, 0)
    start = delta * clip_idx / num_clips
    end = start + clip_size - 1
    index = [start + (end - start) * i / (num_frames - 1) for i in range(num_frames)]
    return np.array([math.floor(min(max(x, 0), video_size - 1)) for x in index])


def official_uniform_crop(frames, size, spatial_idx):
    """The official `uniform_crop` (`transform.py`) on (T, C, H, W): shorter side already `size`."""
    height, width = frames.shape[2], frames.shape[3]
    y_offset = int(np.ceil((height - size) / 2))
    x_offset = int(np.ceil((width - size) / 2))
    if height > width:
        y_offset = 0 if spatial_idx == 0 else (height - size if spatial_idx == 2 else y_offset)
    else:
        x_offset = 0 if spatial_idx == 0 else (width - size if spatial_idx == 2 else x_offset)
    return frames[:, :, y_offset : y_offset + size, x_offset : x_offset + size]


def official_test_clips(frames, fps, num_frames, sampling_rate, num_clips, crops, size, antialias=False):
    """Independent torch version of the official test transform: indices, short-side resize (bilinear,
    align_corners=False, new long side floor(long / short * size)), uniform crops, /255, mean/std."""
    clips = []
    for clip_idx in range(num_clips):
        index = official_indices(len(frames), fps, num_frames, sampling_rate, clip_idx, num_clips)
        clip = torch.from_numpy(frames[index]).permute(0, 3, 1, 2).float()  # (T, C, H, W)
        height, width = clip.shape[2:]
        if width < height:
            new_h, new_w = int(np.floor(height / width * size)), size
        else:
            new_h, new_w = size, int(np.floor(width / height * size))
        clip = F.interpolate(clip, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=antialias)
        for spatial_idx in ([1] if crops == 1 else [0, 1, 2]):
            crop = official_uniform_crop(clip, size, spatial_idx)
            crop = (crop / 255.0 - 0.45) / 0.225
            clips.append(crop.permute(0, 2, 3, 1).numpy())
    return np.stack(clips)


VIDEOS = [(".mp4", 30.0, 46, 62), (".webm", 25.0, 38, 70), (".mp4", 24.0, 62, 40), (".webm", 60.0, 34, 34)]


@pytest.fixture(scope="module")
def coded_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    paths = []
    for suffix, fps, height, width in VIDEOS:
        path = root / f"coded_{int(fps)}fps_{height}x{width}{suffix}"
        write_video(path, coded_frames(150, height, width), fps=fps)
        paths.append((path, fps))
    return paths


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    model = randomised_hf_model("divided_space_time", num_labels=5)
    model.config.id2label = {i: f"action_{i}" for i in range(5)}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    path = tmp_path_factory.mktemp("hf") / "timesformer"
    model.save_pretrained(path)
    return path


@pytest.mark.parametrize("rate, views", [(32, 1), (8, 3), (2, 5)])
def test_sampled_frames_are_the_official_loaders(coded_videos, rate, views):
    for path, fps in coded_videos:
        info = probe_video(path)
        assert (info.num_frames, info.fps) == (150, fps)
        config = protocol_for(timesformer_jax.create_model("timesformer_tiny"), sampling_rate=rate,
                               num_temporal_views=views)
        ours = eval_view_indices(config, info.num_frames, info.fps).numpy()
        expected = np.stack([official_indices(150, fps, 4, rate, v, views) for v in range(views)])
        np.testing.assert_array_equal(ours, expected)
        frames = read_frames(path, ours.reshape(-1), info.fps)  # seeks to the first one
        assert sorted(frames) == sorted(set(expected.reshape(-1).tolist()))
        assert {i: frame_code(f) for i, f in frames.items()} == {i: i for i in frames}, path


def test_seeking_decodes_the_same_frames_as_decoding_everything(coded_videos):
    for path, fps in coded_videos:
        everything = decode_video(path, short_side=None).frames
        late = [97, 98, 140, 149]
        sought = read_frames(path, late, fps)
        for i in late:
            np.testing.assert_array_equal(sought[i], everything[i])


@pytest.mark.parametrize("antialias", [False, True])
def test_classify_equals_the_model_on_the_official_test_clips(coded_videos, hf_dir, antialias):
    model = timesformer_jax.load_pretrained(hf_dir)
    config = protocol_for(model.module, sampling_rate=4, num_temporal_views=2, antialias=antialias)
    for path, fps in coded_videos:
        (prediction,) = classify(model, path, config, k=3)
        assert prediction.error is None, prediction.error
        frames = decode_video(path, short_side=None).frames
        clips = official_test_clips(frames, fps, 4, 4, 2, 3, 32, antialias=antialias)
        expected = np.asarray(model(clips))
        np.testing.assert_allclose(prediction.view_logits, expected, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(prediction.logits, expected.mean(0), rtol=1e-4, atol=2e-5)
        probabilities = np.exp(expected.mean(0)) / np.exp(expected.mean(0)).sum()
        best = int(np.argmax(probabilities))
        assert prediction.top_k[0] == (best, f"action_{best}", pytest.approx(probabilities[best], rel=1e-4))


def test_views_are_normalised_whatever_dtype_the_protocol_names(coded_videos, hf_dir):
    model = timesformer_jax.load_pretrained(hf_dir)
    config = protocol_for(model.module, sampling_rate=4)
    path = coded_videos[0][0]
    expected = read_views(path, config)
    # normalised: (0 / 255 - 0.45) / 0.225 = -2 to (1 - 0.45) / 0.225 = 2.44, not 0 to 255
    assert expected.dtype == np.float32 and -2.0001 <= expected.min() and expected.max() <= 2.4445
    np.testing.assert_array_equal(read_views(path, dataclasses.replace(config, dtype="uint8")), expected)


def test_antialias_changes_large_downscales(tmp_path, hf_dir):
    # 240 px frames to a 32 px crop: 7.5x. The antialiased pixels differ, and so do the logits.
    path = tmp_path / "big.mp4"
    write_video(path, coded_frames(40, 240, 320, seed=3), fps=30)
    model = timesformer_jax.load_pretrained(hf_dir)
    plain, smooth = (classify(model, path, protocol_for(model.module, antialias=a))[0] for a in (False, True))
    assert np.abs(plain.view_logits - smooth.view_logits).max() > 1e-3


def test_softmax_aggregate_is_the_mean_of_view_probabilities(coded_videos, hf_dir):
    model = timesformer_jax.load_pretrained(hf_dir)
    path = coded_videos[0][0]
    (prediction,) = classify(model, path, aggregate="softmax", k=5)
    view_probabilities = torch.softmax(torch.from_numpy(prediction.view_logits), dim=-1).mean(0).numpy()
    np.testing.assert_allclose(prediction.scores, view_probabilities, rtol=1e-6)
    assert [i for i, _, _ in prediction.top_k] == list(np.argsort(-view_probabilities, kind="stable"))


def test_labels_official_checkpoint_gets_kinetics_names_and_hf_names_win(tmp_path, hf_dir):
    hf = randomised_hf_model("divided_space_time", num_labels=400)
    torch.save({"model_state": official_state_dict(hf)}, tmp_path / "k400.pyth")
    official = timesformer_jax.load_pretrained(tmp_path / "k400.pyth", num_heads=3)
    assert official.class_names is None
    messages = []
    names = resolve_labels(400, official.class_names, log=messages.append)
    assert (names[0], names[5], names[399]) == ("abseiling", "archery", "zumba")
    assert "Kinetics-400" in messages[0]
    # HF id2label wins, and a labels file wins over both.
    named = timesformer_jax.load_pretrained(hf_dir)
    assert resolve_labels(5, named.class_names) == [f"action_{i}" for i in range(5)]
    (tmp_path / "mine.txt").write_text("# my classes\na\nb\nc\nd\ne\n")
    assert resolve_labels(5, named.class_names, tmp_path / "mine.txt") == list("abcde")
    with pytest.raises(ValueError, match="has 5 names, but the model has 7 classes"):
        resolve_labels(7, None, tmp_path / "mine.txt")
    assert resolve_labels(7) == [str(i) for i in range(7)]  # no shipped list has 7 classes


def test_shipped_lists_have_their_datasets_sizes():
    from timesformer_jax.inference.labels import shipped_labels

    sizes = {name: len(shipped_labels(name)) for name in ("kinetics400", "kinetics700", "something_something_v2",
                                                          "ucf101")}
    assert sizes == {"kinetics400": 400, "kinetics700": 700, "something_something_v2": 174, "ucf101": 101}
    assert shipped_labels("ucf101")[:3] == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert shipped_labels("something_something_v2")[0] == "Approaching something with your camera"


def write_audio_only(path):
    """An MP4 with one AAC stream and no video."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_bad_files_next_to_good_ones(tmp_path, coded_videos, hf_dir):
    good = coded_videos[0][0]
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a_good.mp4").write_bytes(good.read_bytes())
    (folder / "b_empty.mp4").write_bytes(b"")
    (folder / "c_garbage.webm").write_bytes(b"not a video at all" * 100)
    (folder / "d_truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    write_audio_only(folder / "e_audio_only.mp4")
    (folder / "notes.txt").write_text("not a video suffix: not picked up")
    json_path = tmp_path / "out.json"
    main = predict_cli().main

    assert main(["--checkpoint", str(hf_dir), "--json", str(json_path), "--top-k", "2", str(folder),
                 str(tmp_path / "missing.mp4")]) == 2  # some classified, some failed
    records = {r["video"].rsplit("/", 1)[-1]: r for r in json.loads(json_path.read_text())}
    assert sorted(records) == ["a_good.mp4", "b_empty.mp4", "c_garbage.webm", "d_truncated.mp4",
                               "e_audio_only.mp4", "missing.mp4"]
    good_record = records["a_good.mp4"]
    assert len(good_record["logits"]) == 5 and len(good_record["top_k"]) == 2
    assert good_record["top_k"][0]["label"].startswith("action_")
    assert "empty" in records["b_empty.mp4"]["error"]
    assert "cannot" in records["c_garbage.webm"]["error"]
    assert "error" in records["d_truncated.mp4"]
    assert "no video file" in records["missing.mp4"]["error"]
    assert "no video stream" in records["e_audio_only.mp4"]["error"]
    assert main(["--checkpoint", str(hf_dir), str(folder / "b_empty.mp4")]) == 1  # nothing classified


def test_predict_files_reports_an_empty_folder(tmp_path, hf_dir):
    with pytest.raises(FileNotFoundError, match="no video files"):
        predict_files(str(hf_dir), [tmp_path])


def write_hub_cache(cache, repo_id, source_dir, commit="0123456789abcdef0123456789abcdef01234567"):
    """A Hub cache entry laid out as huggingface_hub writes it: blobs named by content hash, the snapshot's
    files as relative symlinks to them, and refs/main naming the commit."""
    import hashlib
    import os

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in sorted(source_dir.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


HUB_SCRIPT = """
import json, sys
import numpy as np
import timesformer_jax
model = timesformer_jax.load_pretrained(sys.argv[1])
print("NAMES", json.dumps(list(model.class_names)))
print("LOGITS", json.dumps(np.asarray(model(np.load(sys.argv[2]))).tolist()))
try:
    timesformer_jax.load_pretrained("nobody/not-cached")
except FileNotFoundError as e:
    print("ERROR", e)
"""


@pytest.mark.slow
def test_hub_id_loads_from_an_offline_cache(tmp_path, hf_dir):
    import os
    import subprocess
    import sys

    from transformers import TimesformerForVideoClassification

    cache = tmp_path / "hub"
    write_hub_cache(cache, "someone/timesformer-tiny", hf_dir)
    clip = np.random.default_rng(2).normal(size=(2, 4, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", HUB_SCRIPT, "someone/timesformer-tiny", str(tmp_path / "clip.npy")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in done.stdout.splitlines() if " " in line}
    hf = TimesformerForVideoClassification.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        expected = hf(pixel_values=torch.from_numpy(clip).permute(0, 1, 4, 2, 3)).logits.numpy()
    ours = np.array(json.loads(lines["LOGITS"]))
    assert np.abs(ours - expected).max() / np.abs(expected).max() <= 1e-5
    assert json.loads(lines["NAMES"]) == [f"action_{i}" for i in range(5)]
    error = lines["ERROR"]
    assert "nobody/not-cached" in error and str(cache) in error and "HF_HUB_OFFLINE is on" in error


def test_local_path_wins_over_a_hub_id(tmp_path, hf_dir, monkeypatch):
    import shutil

    local = tmp_path / "someone" / "timesformer-tiny"
    shutil.copytree(hf_dir, local)
    monkeypatch.chdir(tmp_path)
    from timesformer_jax import pretrained

    monkeypatch.setattr(pretrained, "hub_snapshot", lambda *a, **k: pytest.fail("a local path was sent to the Hub"))
    model = timesformer_jax.load_pretrained("someone/timesformer-tiny")
    assert model.module.num_classes == 5


EXPORT_SCRIPT = """
import sys
import numpy as np
from jax import export
model = export.deserialize(open(sys.argv[1], "rb").read())
assert model.platforms == ("cpu", "cuda", "tpu"), model.platforms
assert "timesformer_jax" not in sys.modules and "flax" not in sys.modules
for batch in (1, 3):
    clip = np.load(sys.argv[2])[:batch]
    np.save(sys.argv[3] + f"_{batch}.npy", np.asarray(model.call(clip)))
print("OK")
"""


@pytest.mark.slow
def test_exported_model_reloads_in_a_fresh_process(tmp_path, hf_dir):
    import os
    import subprocess
    import sys

    from timesformer_jax.cli import export as export_cli

    assert export_cli.main(["--checkpoint", str(hf_dir), "--output", str(tmp_path / "model.jax"),
                            "--platforms", "cpu,cuda,tpu"]) == 0
    description = json.loads((tmp_path / "model.jax.json").read_text())
    assert description["platforms"] == ["cpu", "cuda", "tpu"] and description["attention"] == "xla"
    assert description["input"]["shape"] == ["batch", 4, 32, 32, 3] and description["class_names"][0] == "action_0"
    clip = np.random.default_rng(4).normal(size=(3, 4, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    # What a venv holding only jax and flatbuffers (and what they install) can import: those packages of this
    # environment on the path, the standard library, and no site-packages (-S)
    only_jax = tmp_path / "only_jax"
    only_jax.mkdir()
    site = Path(np.__file__).parents[1]
    allowed = ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum", "scipy", "flatbuffers")
    for entry in site.iterdir():
        name = entry.name.lower().replace("-", "_")
        if any(name == a or name.startswith((f"{a}.", f"{a}_", f"{a}-")) for a in allowed) and "plugin" not in name:
            (only_jax / entry.name).symlink_to(entry)
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(only_jax))
    done = subprocess.run([sys.executable, "-S", "-c", EXPORT_SCRIPT, str(tmp_path / "model.jax"), str(tmp_path / "clip.npy"),
                           str(tmp_path / "out")], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]
    live = np.asarray(timesformer_jax.load_pretrained(hf_dir)(clip))
    for batch in (1, 3):
        np.testing.assert_allclose(np.load(tmp_path / f"out_{batch}.npy"), live[:batch], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_onnx_export_matches_in_onnxruntime(tmp_path, hf_dir):
    pytest.importorskip("jax2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from timesformer_jax.inference.export import export_onnx

    model = timesformer_jax.load_pretrained(hf_dir)
    path = export_onnx(model, tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path))
    for batch in (1, 3):
        clip = np.random.default_rng(batch).normal(size=(batch, 4, 32, 32, 3)).astype(np.float32)
        (out,) = session.run(None, {session.get_inputs()[0].name: clip})
        np.testing.assert_allclose(out, np.asarray(model(clip)), rtol=1e-5, atol=1e-5)


def test_converted_checkpoint_keeps_class_names(tmp_path, hf_dir):
    from timesformer_jax.convert.conversion import convert_to_directory

    convert_to_directory(hf_dir, tmp_path / "kept")
    assert timesformer_jax.load_pretrained(tmp_path / "kept").class_names == tuple(f"action_{i}" for i in range(5))
    convert_to_directory(hf_dir, tmp_path / "named", class_names=list("vwxyz"))
    assert timesformer_jax.load_pretrained(tmp_path / "named").class_names == tuple("vwxyz")
    # A new head (another class count) has no names.
    convert_to_directory(hf_dir, tmp_path / "new_head", num_classes=3)
    assert timesformer_jax.load_pretrained(tmp_path / "new_head").class_names is None


def test_batches_across_videos_give_the_same_results(coded_videos, hf_dir):
    model = timesformer_jax.load_pretrained(hf_dir)
    paths = [path for path, _ in coded_videos] + [coded_videos[0][0].with_name("missing.mp4")]
    seen = []
    one_by_one = classify(model, paths)
    batched = classify(model, paths, batch_size=8, progress=lambda i, p: seen.append((i, p.video)))
    assert seen == [(i + 1, str(p)) for i, p in enumerate(paths)]
    for a, b in zip(one_by_one, batched):
        assert (a.video, a.error is None) == (b.video, b.error is None)
        if a.error is None:
            np.testing.assert_allclose(b.view_logits, a.view_logits, rtol=1e-5, atol=1e-6)
            assert [i for i, _, _ in a.top_k] == [i for i, _, _ in b.top_k]
