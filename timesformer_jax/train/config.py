"""The training config: one ConfigDict schema shared by every file under `configs/`.

    config.model      TimeSformer fields (preset + attention_type, dtype, drop_path_rate, ...)
    config.dataset    name / config of a prepared TFDS dataset (`timesformer build-dataset`), data_dir, splits
    config.clip       ClipConfig fields except num_frames / crop_size, which come from the model
    config.optimizer  OptimizerConfig fields: any optax optimizer by name, its args (the paper's SGD by default)
    config.schedule   ScheduleConfig fields: step_decay (the paper's), warmup_cosine or constant
    config.mesh       sizes of the data / fsdp / tensor axes (-1: the remaining devices)
    config.sharding   the logical-axis rules (logical name -> mesh axes) and whether a dimension the mesh does
                      not divide may be replicated (default: an error)
    config.checkpoint save interval and how many to keep
    top level         global batch sizes, label smoothing, seed, init checkpoint, eval / log intervals

`configs/<name>.py` start from `base_config()` and change what their setting needs; every field can be
overridden from the command line (`--config.batch_size=16`, `--config.model.attention_type=joint_space_time`).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import ml_collections

from timesformer_jax.data.clip_config import ClipConfig
from timesformer_jax.model.presets import PRESETS, check_model_fields
from timesformer_jax.parallel.rules import LOGICAL_AXIS_RULES, rules_as_mapping, rules_from_mapping
from timesformer_jax.train.optimizer import RECIPE_ARGS, OptimizerConfig, ScheduleConfig
from timesformer_jax.train.plateau import plateau_rule

_CLIP_FROM_MODEL = ("num_frames", "crop_size")


def _dataclass_defaults(cls, exclude=()) -> dict:
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        value = field.default
        values[field.name] = list(value) if isinstance(value, tuple) else value
    return values


def base_config(preset: str = "timesformer_base", attention_type: str = "divided_space_time") -> ml_collections.ConfigDict:
    """The official Kinetics-400 recipe on `preset`: 8 x 32 dense clips, SGD lr 0.005 per 64 clips, 15 epochs."""
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict(dict(PRESETS[preset], attention_type=attention_type))
    config.model.dtype = "float32"  # compute dtype; "bfloat16" for mixed precision (params stay float32)
    config.model.drop_path_rate = 0.0
    config.model.dropout_rate = 0.0
    config.model.remat = False
    config.model.remat_policy = "nothing"  # with remat: what a block keeps (model.timesformer.REMAT_POLICIES)
    config.model.time_embed_init_std = 0.0  # 0: zeros, as the official model (see TimeSformer)
    config.model.scan_blocks = False  # the blocks as one nn.scan: faster compiles, stacked block parameters
    config.model.stage_fc_init_std = 0.0  # the stages' output projections (temporal_fc, local_fc, width_fc)
    config.model.weight_init = "official"  # dense kernels: std 0.02 ("official") or 1/sqrt(fan in) ("fan_in")
    # None: cuDNN fused attention on NVIDIA GPUs in bf16, the splash kernel on TPUs for groups of 512 tokens or
    # more (XLA for the shorter groups of the same model), XLA elsewhere (train.experiment.platform_attention); or
    # "xla" / "cudnn" / "splash"
    config.model.attention_impl = ml_collections.FieldReference(None, field_type=str)
    config.model.splash_min_length = 0  # with "splash": groups shorter than this use XLA's attention

    config.dataset = ml_collections.ConfigDict()
    config.dataset.name = "kinetics"  # one of data/builders.py's, or any registered TFDS video dataset
    config.dataset.config = "400"
    config.dataset.data_dir = ml_collections.FieldReference(None, field_type=str)  # None: TFDS default
    config.dataset.short_side = ml_collections.FieldReference(None, field_type=int)  # None: as built (320)
    config.dataset.train_split = "train"
    config.dataset.eval_split = "validation"  # "auto": the prepared dataset's validation split, else its test split
    config.dataset.infer_classes = False  # True: model.num_classes is the prepared dataset's class count
    # "tfds": a record per video; "frames": the frame store beside it (a record per frame, a clip reads only
    # its frames; `timesformer build-dataset --layout frames`, data/frame_store.py)
    config.dataset.layout = "tfds"
    # A TFDS dataset that is not one of ours (data/sources.py): its frames and label features, and the frame rate
    # taken when it stores none
    config.dataset.video_feature = "video"
    config.dataset.label_feature = "label"
    config.dataset.fps = 30.0

    config.clip = ml_collections.ConfigDict(_dataclass_defaults(ClipConfig, exclude=_CLIP_FROM_MODEL))
    config.optimizer = ml_collections.ConfigDict(_dataclass_defaults(OptimizerConfig, exclude=("args",)))
    config.optimizer.args = ml_collections.ConfigDict(RECIPE_ARGS["sgd"])  # optax.sgd(..., momentum=0.9)
    config.optimizer.clip_grad_norm = ml_collections.FieldReference(None, field_type=float)
    config.schedule = ml_collections.ConfigDict(_dataclass_defaults(ScheduleConfig))

    config.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    config.sharding = ml_collections.ConfigDict(dict(rules=rules_as_mapping(LOGICAL_AXIS_RULES),
                                                     replicate_indivisible=False))
    config.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep=3))

    config.batch_size = 64  # global, over all hosts and devices (the official 8 GPUs x 8)
    config.eval_batch_size = 64  # global, in views
    config.label_smoothing = 0.0
    config.seed = 0
    config.shuffle_buffer = 512
    config.aot_executable = ""  # a train step compiled ahead of time for this run (`timesformer compile --save`)
    # converted checkpoint dir (`timesformer convert`), a ViT/TimeSformer file or a training workdir; its architecture
    # (width, depth, heads, patch, MLP) replaces the config's (train/resolved_config.py)
    config.init_checkpoint = ""
    config.eval_every_epochs = 1
    # Stop when video top-1 has not improved by more than min_delta in `patience` evaluations in a row, counting
    # from epoch start_from_epoch (train/plateau.py); patience 0: train the whole schedule
    config.stop_on_plateau = ml_collections.ConfigDict(dict(patience=0, min_delta=0.01, start_from_epoch=0.0))
    config.eval_aggregation = "logits"  # how a video's views combine: "logits" (summed, as the official test) or "softmax"
    config.log_every_steps = 50
    config.max_steps = -1  # stop after this many steps (the schedule still spans optimizer.epochs); -1: all
    return config


def _dataclass_fields(section: ml_collections.ConfigDict) -> dict:
    """Config values as the frozen dataclasses hold them (lists, which ConfigDict keeps, become tuples)."""
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in section.items()}


def clip_config(config: ml_collections.ConfigDict) -> ClipConfig:
    return ClipConfig(num_frames=config.model.num_frames, crop_size=config.model.image_size,
                      **_dataclass_fields(config.clip))


def optimizer_config(config: ml_collections.ConfigDict) -> OptimizerConfig:
    fields = _dataclass_fields(config.optimizer)
    return OptimizerConfig(**{**fields, "args": config.optimizer.args.to_dict()})


def schedule_config(config: ml_collections.ConfigDict) -> ScheduleConfig:
    return ScheduleConfig(**_dataclass_fields(config.schedule))


def sharding_rules(config: ml_collections.ConfigDict) -> tuple:
    """The run's logical-axis rules (`config.sharding.rules`) as flax takes them."""
    return rules_from_mapping(config.sharding.rules)


def model_fields(config: ml_collections.ConfigDict) -> dict:
    return config.model.to_dict()


def shipped_configs() -> dict[str, Path]:
    """The configs that ship with the package (`configs/` of the repository, installed as
    `timesformer_jax.configs`), by name: {"k400_base": Path(".../k400_base.py"), ...}."""
    import importlib.resources

    root = importlib.resources.files("timesformer_jax.configs")
    return {Path(entry.name).stem: Path(str(entry)) for entry in root.iterdir()
            if entry.name.endswith(".py") and not entry.name.startswith("_")}


def config_path(name_or_path: str | Path) -> Path:
    """The config file `name_or_path` names: an existing file as it is, else a shipped config by name
    ("k400_base" or "k400_base.py"). FileNotFoundError naming the shipped configs when it is neither."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if path.parent == Path(".") and path.stem in shipped and path.suffix in ("", ".py"):
        return shipped[path.stem]
    raise FileNotFoundError(f"no config file {str(name_or_path)!r}: give a path to a config file or the name of "
                            f"a shipped one ({', '.join(sorted(shipped))})")


def load_config_file(path: str | Path, arg: str | None = None) -> ml_collections.ConfigDict:
    """`get_config(arg)` of a config file or a shipped config by name (what `--config path:arg` gives the tools),
    for use from Python."""
    path = config_path(path)
    spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config() if arg is None else module.get_config(arg)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# (field, test, what the field must be): the values a run needs before any work starts
_POSITIVE_INTS = ("batch_size", "eval_batch_size", "checkpoint.every_steps", "checkpoint.keep", "log_every_steps",
                  "eval_every_epochs", "clip.sampling_rate", "clip.num_temporal_views", "optimizer.epochs",
                  "optimizer.accumulation_steps", "optimizer.reference_batch_size")
_RULES = (
    *((name, lambda v: _is_int(v) and v > 0, "a positive integer") for name in _POSITIVE_INTS),
    ("max_steps", lambda v: _is_int(v) and (v == -1 or v > 0), "-1 (the whole schedule) or a positive integer"),
    ("shuffle_buffer", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("seed", _is_int, "an integer"),
    ("label_smoothing", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("optimizer.base_learning_rate", lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    ("optimizer.weight_decay", lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    ("optimizer.clip_grad_norm", lambda v: v is None or (_is_number(v) and v > 0), "None or a finite number > 0"),
    ("clip.target_fps", lambda v: _is_number(v) and v > 0, "a finite number > 0"),
    ("schedule.warmup_epochs", lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    ("schedule.decay_factor", lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    ("eval_aggregation", lambda v: v in ("logits", "softmax"), "'logits' or 'softmax'"),
    ("sharding.replicate_indivisible", lambda v: isinstance(v, bool), "True or False"),
    ("dataset.layout", lambda v: v in ("tfds", "frames"), "'tfds' or 'frames'"),
    ("dataset.fps", lambda v: _is_number(v) and v > 0, "a frame rate > 0"),
    *((f"mesh.{axis}", lambda v: _is_int(v) and (v == -1 or v > 0), "-1 (the remaining devices) or a positive integer")
      for axis in ("data", "fsdp", "tensor")),
)


def flat_fields(config: ml_collections.ConfigDict | dict, prefix: str = "") -> dict:
    """{"model.depth": 12, "optimizer.args.momentum": 0.9, ...}: every leaf of `config` by its dotted name."""
    items = config.items() if isinstance(config, (dict, ml_collections.ConfigDict)) else ()
    flat = {}
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, (dict, ml_collections.ConfigDict)) and len(value):
            flat.update(flat_fields(value, name + "."))
        else:
            flat[name] = value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value
    return flat


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
    """What is wrong with `config`'s values, one phrase per field (empty when nothing): the checks every run
    makes before it reads data or touches a checkpoint."""
    fields = flat_fields(config)
    problems = []
    for name, test, expected in _RULES:
        if name in fields and not test(fields[name]):
            problems.append(f"config.{name} must be {expected}, got {fields[name]!r}")
    try:
        check_model_fields(model_fields(config), source="config.model")
    except ValueError as e:
        problems.append(str(e))
    for section, build in (("clip", clip_config), ("optimizer", optimizer_config), ("schedule", schedule_config)):
        if not any(p.startswith(f"config.{section}.") for p in problems):
            try:
                build(config)
            except (TypeError, ValueError) as e:
                problems.append(f"config.{section}: {e}")
    try:
        sharding_rules(config)
    except ValueError as e:
        problems.append(str(e))
    try:
        plateau_rule(config)
    except (TypeError, ValueError) as e:
        problems.append(str(e))
    return problems


def check_config(config: ml_collections.ConfigDict) -> None:
    """ValueError listing every field of `config` whose value makes no sense (`config_problems`)."""
    problems = config_problems(config)
    if problems:
        raise ValueError("; ".join(problems))
