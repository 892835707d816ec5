"""Everything a config fixes before the first step: model, mesh, dataset, batch arithmetic, optimizer, shardings.

Shared by training and evaluation, so both read a config the same way.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from timesformer_jax.data.frame_store import FrameStore, frame_store_dir
from timesformer_jax.data.clip_config import ClipConfig
from timesformer_jax.model import TimeSformer
from timesformer_jax.model.presets import check_model_fields
from timesformer_jax.parallel import batch_sharding, create_mesh, with_shardings
from timesformer_jax.train.config import (check_config, clip_config, model_fields, optimizer_config, schedule_config,
                                         sharding_rules)
from timesformer_jax.train.optimizer import create_optimizer
from timesformer_jax.train.state import StepConfig, TrainState, make_eval_step, make_train_step, state_shardings

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

    from timesformer_jax.data.sources import TfdsVideoSource


@dataclasses.dataclass
class Experiment:
    config: ml_collections.ConfigDict
    model: TimeSformer
    mesh: jax.sharding.Mesh
    # what the input pipelines read: the prepared TFDS builder, or the frame store beside it (dataset.layout
    # "frames"); None when compiled ahead of time without data (`experiment_without_data`)
    data_source: tfds.core.DatasetBuilder | TfdsVideoSource | FrameStore | None
    class_names: list[str]
    clip: ClipConfig
    global_batch: int  # clips per micro-step, all hosts
    local_batch: int  # clips per micro-step on this host
    eval_global_batch: int
    eval_local_batch: int
    steps_per_epoch: int  # micro-steps (train_step calls) per epoch
    total_steps: int  # micro-steps of the whole schedule
    optimizer: object
    schedule: object
    shardings: TrainState
    abstract: TrainState
    rules: tuple  # the logical-axis rules (config.sharding.rules) every step and constraint resolves against

    @property
    def video_shape(self) -> tuple[int, ...]:
        return init_video_shape(self.mesh, self.clip)

    @property
    def last_step(self) -> int:
        max_steps = self.config.max_steps
        return self.total_steps if max_steps is None or max_steps < 0 else min(max_steps, self.total_steps)

    def num_examples(self, split: str) -> int:
        if self.data_source is None:
            raise ValueError("this experiment was built without a dataset (experiment_without_data)")
        if isinstance(self.data_source, FrameStore):
            return self.data_source.num_examples(split)
        return self.data_source.info.splits[split].num_examples


def init_video_shape(mesh: jax.sharding.Mesh, clip: ClipConfig) -> tuple[int, ...]:
    """(B, T, H, W, C) with the smallest batch the mesh's batch axes can split: what state initialisation traces."""
    batch = mesh.shape["data"] * mesh.shape["fsdp"]
    return (batch, clip.num_frames, clip.crop_size, clip.crop_size, 3)


def epoch_seed(seed: int, epoch: int) -> int:
    """The input pipeline's seed for one epoch: a fixed function of (seed, epoch), so a resumed run reads the
    same clips as an uninterrupted one."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _per_host(global_size: int, what: str, mesh) -> int:
    processes = jax.process_count()
    batch_devices = mesh.shape["data"] * mesh.shape["fsdp"]
    if global_size % batch_devices or global_size % processes:
        raise ValueError(f"{what} {global_size} must be divisible by the batch-sharded devices "
                         f"(data x fsdp = {batch_devices}) and by the process count ({processes})")
    return global_size // processes


def _dataset(config: ml_collections.ConfigDict, num_classes: int):
    """(prepared TFDS builder, TfdsVideoSource or FrameStore, class names, number of training videos) of
    `config.dataset`, checked against the model's class count and the configured splits."""
    # TensorFlow and TFDS (the data extra) only where a dataset is read: compiling a config needs neither
    from timesformer_jax.data.sources import dataset_name, prepared_source, source_class_names

    builder = prepared_source(config.dataset)
    layout = config.dataset.get("layout", "tfds")
    if layout not in ("tfds", "frames"):
        raise ValueError(f"config.dataset.layout must be 'tfds' or 'frames', got {layout!r}")
    names = source_class_names(builder)  # the frame store holds the same, copied from here
    if len(names) != num_classes:
        raise ValueError(f"config.model.num_classes is {num_classes}, but dataset {dataset_name(builder)} has "
                         f"{len(names)} classes")
    if layout == "frames":
        store = _frame_store(builder, config)
        return store, store.class_names, store.num_examples(config.dataset.train_split)
    for split in (config.dataset.train_split, config.dataset.eval_split):
        try:
            builder.info.splits[split]  # also accepts TFDS slices such as "train[:90%]"
        except (KeyError, ValueError) as e:
            raise ValueError(f"dataset {builder.name} has no split {split!r} ({e}); it has "
                             f"{sorted(builder.info.splits)}") from None
    return builder, names, builder.info.splits[config.dataset.train_split].num_examples


def _frame_store(builder, config: ml_collections.ConfigDict) -> FrameStore:
    """The frame store beside `builder`'s files, with the configured splits checked."""
    from timesformer_jax.data.sources import TfdsVideoSource, dataset_name

    if isinstance(builder, TfdsVideoSource):
        raise ValueError(f"config.dataset.layout 'frames' reads a frame store written from one of this package's "
                         f"builders; {dataset_name(builder)} is a TFDS dataset of another origin: use layout 'tfds'")
    root = frame_store_dir(builder)
    if not root.exists():
        raise FileNotFoundError(
            f"config.dataset.layout is 'frames' but {root} holds no frame store; write it with `"
            f"timesformer build-dataset --dataset {config.dataset.name} --config {builder.builder_config.name} "
            f"--data_dir {config.dataset.data_dir or '<data_dir>'} --layout frames`")
    store = FrameStore(root)
    for split in (config.dataset.train_split, config.dataset.eval_split):
        store.split(split)
    return store


def build_experiment(config: ml_collections.ConfigDict) -> Experiment:
    """The experiment of `config` on all devices, with its prepared dataset. ValueError naming every field whose
    value makes no sense, before any data is read."""
    check_config(config)
    model = _model(config)
    builder, class_names, num_train = _dataset(config, model.num_classes)
    return experiment_without_data(config, create_mesh(dict(config.mesh)), num_train, class_names, builder, model)


def _model(config: ml_collections.ConfigDict) -> TimeSformer:
    fields = model_fields(config)
    check_model_fields(fields)
    return TimeSformer(**fields)


# On TPUs, attention_impl None runs the splash kernel on attention groups of at least this many tokens and XLA's
# attention on shorter ones, which it runs with fewer temporaries (benchmarks/splash_crossover.py, measured in
# docs/scaling.md).
SPLASH_MIN_GROUP_LENGTH = 512


def platform_attention(model: TimeSformer, platform: str) -> TimeSformer:
    """`model` with what `attention_impl` None means on `platform` (a device's `.platform`): cuDNN's fused
    attention on NVIDIA GPUs in half precision (it needs bf16 / fp16 and head_dim a multiple of 8, at most 128);
    on TPUs, when the scheme has groups of SPLASH_MIN_GROUP_LENGTH tokens or more, the splash kernel for those
    groups (`splash_min_length`) and XLA's attention for the shorter ones; XLA's (None) everywhere else. A set
    `attention_impl` is kept."""
    if model.attention_impl is not None:
        return model
    half = jnp.dtype(model.dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
    head_dim = model.hidden_size // model.num_heads
    if platform in ("gpu", "cuda") and half and head_dim % 8 == 0 and head_dim <= 128:
        return model.clone(attention_impl="cudnn")
    if platform == "tpu":
        longest = max(layout.length for layout in model.scheme.layouts(model.num_frames, *model.config_grid))
        if longest >= SPLASH_MIN_GROUP_LENGTH:
            return model.clone(attention_impl="splash", splash_min_length=SPLASH_MIN_GROUP_LENGTH)
    return model


def _attention_for_platform(model: TimeSformer, mesh: jax.sharding.Mesh) -> TimeSformer:
    return platform_attention(model, mesh.devices.flat[0].platform)


def experiment_without_data(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, num_train_examples: int,
                            class_names: list[str] | None = None, data_source=None,
                            model: TimeSformer | None = None) -> Experiment:
    """The experiment of `config` on `mesh` for a training split of `num_train_examples` videos, without reading a
    dataset (`data_source` None): what ahead-of-time compilation for hardware that is not attached needs (`aot/`)."""
    check_config(config)
    model = _attention_for_platform(model or _model(config), mesh)
    class_names = class_names or [f"class_{i}" for i in range(model.num_classes)]
    clip = clip_config(config)
    optim = optimizer_config(config)
    local_batch = _per_host(config.batch_size, "config.batch_size", mesh)
    eval_local_batch = _per_host(config.eval_batch_size, "config.eval_batch_size", mesh)
    steps_per_epoch = (num_train_examples // jax.process_count()) // local_batch
    steps_per_epoch -= steps_per_epoch % optim.accumulation_steps
    if steps_per_epoch == 0:
        raise ValueError(f"the {config.dataset.train_split!r} split has {num_train_examples} videos, fewer than one "
                         f"optimizer step of {config.batch_size * optim.accumulation_steps} clips")
    optimizer, schedule = create_optimizer(optim, config.batch_size * optim.accumulation_steps,
                                           steps_per_epoch // optim.accumulation_steps, schedule_config(config))
    rules = sharding_rules(config)
    shardings, abstract = state_shardings(model, optimizer, mesh, init_video_shape(mesh, clip), rules,
                                          config.sharding.replicate_indivisible)
    return Experiment(
        config=config, model=model, mesh=mesh, data_source=data_source, class_names=class_names, clip=clip,
        global_batch=config.batch_size, local_batch=local_batch, eval_global_batch=config.eval_batch_size,
        eval_local_batch=eval_local_batch, steps_per_epoch=steps_per_epoch,
        total_steps=optim.epochs * steps_per_epoch, optimizer=optimizer, schedule=schedule,
        shardings=shardings, abstract=abstract, rules=rules,
    )


def step_functions(exp: Experiment) -> tuple:
    """(train_step, eval_step) of `exp`, jitted with its shardings: what the training loop runs and what
    ahead-of-time compilation compiles."""
    config = step_config(exp)
    return (make_train_step(exp.model, exp.optimizer, exp.schedule, exp.mesh, exp.shardings, config, exp.rules),
            make_eval_step(exp.model, exp.mesh, exp.shardings, config, exp.rules))


def step_config(exp: Experiment) -> StepConfig:
    """The steps' settings: label smoothing, dropout seed, accumulation, and the clip normalisation that uint8
    batches get on the device."""
    config = exp.config
    return StepConfig(label_smoothing=config.label_smoothing, seed=config.seed,
                      accumulation_steps=config.optimizer.accumulation_steps, mean=tuple(exp.clip.mean),
                      std=tuple(exp.clip.std))


def abstract_batches(exp: Experiment) -> tuple[dict, jax.ShapeDtypeStruct]:
    """(train batch, eval video) as sharded `jax.ShapeDtypeStruct`s, global shapes: the train step's
    {'video': (B, T, H, W, 3) clip dtype, 'label': (B,) int32} and the eval step's (B_eval, T, H, W, 3)."""
    sharding = batch_sharding(exp.mesh)
    frame = (exp.clip.num_frames, exp.clip.crop_size, exp.clip.crop_size, 3)
    dtype = jnp.dtype(exp.clip.dtype)
    train = {"video": jax.ShapeDtypeStruct((exp.global_batch, *frame), dtype, sharding=sharding),
             "label": jax.ShapeDtypeStruct((exp.global_batch,), jnp.int32, sharding=sharding)}
    return train, jax.ShapeDtypeStruct((exp.eval_global_batch, *frame), dtype, sharding=sharding)


def abstract_state(exp: Experiment) -> TrainState:
    """The train state as sharded `jax.ShapeDtypeStruct`s."""
    return with_shardings(exp.abstract, exp.shardings)
