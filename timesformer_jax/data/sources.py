"""The dataset a training config names, opened for reading: one of the builders of `builders.py` (prepared from
local videos), or any other registered TFDS video dataset, read through `TfdsVideoSource` so the input pipelines
see every example the way they see ours:

    {'video': (N,) JPEG strings, one per frame, 'label': int64, 'fps': float32, 'video_id': string}

A foreign dataset names its frames and label features (`config.dataset.video_feature` / `label_feature`,
default `video` / `label`); frames stored in another encoding than JPEG (TFDS's `Video` default is PNG) are
re-encoded to JPEG (quality 95) as they are read; a dataset without an `fps` feature is taken at
`config.dataset.fps`; a missing `video_id` becomes the example's position in its split.
"""
from __future__ import annotations

import tensorflow as tf

tf.config.set_visible_devices([], "GPU")  # input only: keep TF off accelerators
import tensorflow_datasets as tfds  # noqa: E402

from timesformer_jax.data.builders import BUILDERS, prepared_builder  # noqa: E402

REENCODED_JPEG_QUALITY = 95


class TfdsVideoSource:
    """A prepared TFDS video dataset that is not one of ours, read as ours (see the module docstring)."""

    def __init__(self, builder: tfds.core.DatasetBuilder, video_feature: str = "video",
                 label_feature: str = "label", fps: float = 30.0):
        features = builder.info.features
        where = f"TFDS dataset {builder.name}/{builder.builder_config.name if builder.builder_config else ''}"
        video = features[video_feature] if video_feature in features else None
        if not isinstance(video, tfds.features.Sequence) or not isinstance(video.feature, tfds.features.Image):
            raise ValueError(f"{where}: config.dataset.video_feature {video_feature!r} must name a video feature "
                             f"(a sequence of images); its features are {sorted(features)}")
        label = features[label_feature] if label_feature in features else None
        if not isinstance(label, tfds.features.ClassLabel):
            raise ValueError(f"{where}: config.dataset.label_feature {label_feature!r} must name a class label; its "
                             f"features are {sorted(features)}")
        if not fps or fps <= 0:
            raise ValueError(f"config.dataset.fps must be a positive frame rate, got {fps!r}")
        self.builder, self.video_feature, self.label_feature, self.fps = builder, video_feature, label_feature, fps
        self.encoding = video.feature.encoding_format or "png"
        self.has_fps = "fps" in features
        self.has_id = "video_id" in features

    @property
    def name(self) -> str:
        return self.builder.name

    @property
    def builder_config(self):
        return self.builder.builder_config

    @property
    def info(self) -> tfds.core.DatasetInfo:
        return self.builder.info

    @property
    def data_dir(self) -> str:
        return self.builder.data_dir

    @property
    def class_names(self) -> list[str]:
        return list(self.builder.info.features[self.label_feature].names)

    def as_dataset(self, split: str, decoders=None, shuffle_files: bool = False, read_config=None) -> tf.data.Dataset:
        """Examples of `split` as ours: frames as undecoded JPEG strings (the pipelines decode only the frames they
        sample; `decoders` is theirs for our builders and is replaced here)."""
        del decoders
        ds = self.builder.as_dataset(split=split, decoders={self.video_feature: tfds.decode.SkipDecoding()},
                                     shuffle_files=shuffle_files, read_config=read_config)

        def as_ours(position, example):
            frames = example[self.video_feature]
            if self.encoding != "jpeg":
                frames = tf.map_fn(lambda data: tf.io.encode_jpeg(tf.io.decode_image(data, channels=3,
                                                                                      expand_animations=False),
                                                                   quality=REENCODED_JPEG_QUALITY),
                                   frames, fn_output_signature=tf.string)
            return {
                "video": frames,
                "label": tf.cast(example[self.label_feature], tf.int64),
                "fps": tf.cast(example["fps"], tf.float32) if self.has_fps else tf.constant(self.fps, tf.float32),
                "video_id": example["video_id"] if self.has_id else tf.strings.as_string(position),
            }

        return ds.enumerate().map(as_ours, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def dataset_name(source) -> str:
    """"name/config" of a prepared dataset, or "name" for a TFDS dataset without configs."""
    config = source.builder_config
    return f"{source.name}/{config.name}" if config is not None else source.name


def source_class_names(source) -> list[str]:
    """The class names of a prepared dataset: one of ours or a `TfdsVideoSource`."""
    if isinstance(source, TfdsVideoSource):
        return source.class_names
    return list(source.info.features["label"].names)


def prepared_source(dataset) -> tfds.core.DatasetBuilder | TfdsVideoSource:
    """The prepared dataset `dataset` (a config's `dataset` section) names: one of ours by name
    (`builders.BUILDERS`), else any registered TFDS dataset. FileNotFoundError with the command that prepares it
    when it is not prepared; ValueError when the name is neither."""
    if dataset.name in BUILDERS:
        return prepared_builder(dataset.name, dataset.data_dir, dataset.config, dataset.short_side)
    name = dataset.name if not dataset.config else f"{dataset.name}/{dataset.config}"
    try:
        builder = tfds.builder(name, data_dir=dataset.data_dir)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
        first_line = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"config.dataset.name {dataset.name!r} is neither a dataset of this package "
                         f"({sorted(BUILDERS)}) nor a TFDS dataset that can be opened here ({first_line})") from None
    if not builder.info.splits:
        raise FileNotFoundError(f"TFDS dataset {name} is not prepared in {builder.data_dir}; prepare it with TFDS "
                                f"(`tfds build {name} --data_dir {dataset.data_dir or '<data_dir>'}`)")
    return TfdsVideoSource(builder, dataset.get("video_feature", "video"), dataset.get("label_feature", "label"),
                           dataset.get("fps", 30.0))
