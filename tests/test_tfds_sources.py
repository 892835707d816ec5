"""Any registered TFDS video dataset as a training input: a builder defined here (PNG frames, its own feature
names, no frame rate or ids) is opened by name through the config and read by the same pipelines as ours. The
reference is the frames the builder wrote, sampled and cropped by hand with the official index rule."""
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from timesformer_jax.data.clip_config import ClipConfig
from timesformer_jax.data.pipeline import eval_dataset, eval_view_clips, eval_view_indices, train_dataset
from timesformer_jax.data.sources import TfdsVideoSource, prepared_source, source_class_names

FRAMES, SIZE = 12, 32


def smooth_frames(index: int) -> np.ndarray:
    """(FRAMES, SIZE, SIZE, 3) uint8: a smooth gradient whose level moves with the frame and the video (JPEG keeps
    it within a few levels)."""
    t = np.arange(FRAMES)[:, None, None, None]
    y = np.arange(SIZE)[None, :, None, None]
    x = np.arange(SIZE)[None, None, :, None]
    c = np.arange(3)[None, None, None, :]
    return (20 + 2 * y + x + 5 * t + 30 * c + 3 * index).astype(np.uint8)  # at most 252


class TinyPngVideos(tfds.core.GeneratorBasedBuilder):
    """Registered as `tiny_png_videos`: frames in TFDS's default PNG encoding, features `clip` and `action`."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "clip": tfds.features.Video(shape=(None, SIZE, SIZE, 3)),
            "action": tfds.features.ClassLabel(names=["left", "right", "still"]),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(range(6)), "test": self._generate_examples(range(6, 9))}

    def _generate_examples(self, indices):
        for i in indices:
            yield i, {"clip": smooth_frames(i), "action": i % 3}


def dataset_config(data_dir, **changes):
    fields = dict(name="tiny_png_videos", config=None, data_dir=str(data_dir), short_side=None,
                  video_feature="clip", label_feature="action", fps=10.0)
    return ml_collections.ConfigDict({**fields, **changes})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("foreign_tfds")
    TinyPngVideos(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def test_a_foreign_tfds_dataset_reads_like_ours(prepared):
    source = prepared_source(dataset_config(prepared))
    assert isinstance(source, TfdsVideoSource) and source.encoding == "png"
    assert source_class_names(source) == ["left", "right", "still"]

    clip = ClipConfig(num_frames=4, sampling_rate=2, target_fps=10.0, crop_size=SIZE, train_scale=(SIZE, SIZE),
                      num_spatial_crops=1)
    batches = list(eval_dataset(source, "test", 3, clip).as_numpy_iterator())
    assert len(batches) == 1
    batch = batches[0]
    # the reference: the split as TFDS itself decodes it (PNG is lossless), in TFDS's order
    stored = list(source.builder.as_dataset(split="test").as_numpy_iterator())
    assert list(batch["label"]) == [example["action"] for example in stored] and list(batch["mask"]) == [1, 1, 1]
    assert sorted(batch["label"]) == [0, 1, 2]
    assert [v.decode() for v in batch["video_id"]] == ["0", "1", "2"]  # no ids stored: position in the split
    indices = eval_view_indices(clip, FRAMES, 10.0).numpy().reshape(-1)
    for row, example in enumerate(stored):
        expected = eval_view_clips(tf.constant(example["clip"][indices]), clip).numpy()[0]
        # re-encoded as JPEG (quality 95) on the way: a few levels of 255, normalised by std 0.225
        np.testing.assert_allclose(batch["video"][row], expected, atol=6 / 255 / 0.225)

    train = next(train_dataset(source, "train", 2, clip, seed=0, repeat=False).as_numpy_iterator())
    assert train["video"].shape == (2, 4, SIZE, SIZE, 3) and set(train["label"]) <= {0, 1, 2}


def test_feature_names_and_unknown_datasets_are_named(prepared):
    with pytest.raises(ValueError, match="video_feature 'video' must name a video feature.*'action', 'clip'"):
        prepared_source(dataset_config(prepared, video_feature="video"))
    with pytest.raises(ValueError, match="label_feature 'label' must name a class label"):
        prepared_source(dataset_config(prepared, label_feature="label"))
    with pytest.raises(ValueError, match="'no_such_videos' is neither a dataset of this package"):
        prepared_source(dataset_config(prepared, name="no_such_videos"))


@pytest.mark.slow
def test_training_runs_on_a_foreign_tfds_dataset(prepared, tmp_path):
    from test_training_loop import tiny_config

    from timesformer_jax.train.loop import train_and_evaluate

    config = tiny_config(prepared, max_steps=2)
    config.dataset.update(name="tiny_png_videos", config=None, video_feature="clip", label_feature="action",
                          fps=10.0, train_split="train", eval_split="test", infer_classes=True)
    config.model.update(image_size=SIZE)
    config.batch_size, config.eval_batch_size = 2, 3
    config.clip.update(train_scale=(SIZE, SIZE), target_fps=10.0, sampling_rate=2)
    summary = train_and_evaluate(config, tmp_path / "run", log=lambda m: None)
    assert summary.last_step == 2 and summary.eval_metrics is not None
    assert 0 <= summary.eval_metrics["video_top1"] <= 1


def test_a_class_count_mismatch_names_a_dataset_without_configs(prepared, data_dir):
    from test_training_loop import tiny_config

    from timesformer_jax.train.experiment import build_experiment

    config = tiny_config(data_dir)
    config.dataset.update(name="tiny_png_videos", config=None, data_dir=str(prepared), video_feature="clip",
                          label_feature="action", fps=10.0, train_split="train", eval_split="test")
    config.model.num_classes = 5
    with pytest.raises(ValueError, match="num_classes is 5, but dataset tiny_png_videos has 3 classes"):
        build_experiment(config)
    config.model.num_classes = 3
    config.dataset.layout = "frames"
    with pytest.raises(ValueError, match="tiny_png_videos is a TFDS dataset of another origin: use layout 'tfds'"):
        build_experiment(config)
