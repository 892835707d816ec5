"""The demo: a small TimeSformer trained from scratch on the embedded `synthetic_motion` dataset, on CPU.

    python tools/train.py --config configs/demo.py --workdir /tmp/demo_divided
    python tools/train.py --config configs/demo.py:space_only --workdir /tmp/demo_space_only
    python tools/train.py --config configs/demo.py:divided_space_time,ci ...   # the CI-size dataset (32 px)

Argument: `<attention_type>[,<dataset size>]`, attention type default divided_space_time, size `demo` (64 px,
800 training clips) or `ci` (32 px, 240 clips). Prepare the data first:
`python tools/build_dataset.py --dataset synthetic_motion --config demo --data_dir <data_dir>`.
Flips are off: a mirrored clip of `move_left` is a `move_right` clip.
"""
from timesformer_jax.data.synthetic_motion import SIZES
from timesformer_jax.train.config import base_config


def get_config(arg: str = "divided_space_time"):
    attention_type, _, size = arg.partition(",")
    size = size or "demo"
    if size not in SIZES:
        raise ValueError(f"unknown synthetic_motion size {size!r}; expected one of {sorted(SIZES)}")
    config = base_config("timesformer_small", attention_type or "divided_space_time")
    spec = SIZES[size]
    config.model.image_size = spec.image_size
    config.model.num_frames = 8
    config.model.drop_path_rate = 0.1
    config.dataset.name = "synthetic_motion"
    config.dataset.config = size
    config.dataset.eval_split = "test"
    # 8 frames, every other one of the 16 stored: the whole clip, at the stored frame rate.
    config.clip.sampling_rate = 2
    config.clip.target_fps = spec.fps
    config.clip.train_scale = [spec.image_size, spec.image_size + spec.image_size // 4]
    config.clip.flip = False
    config.clip.num_spatial_crops = 1
    config.optimizer.name = "adamw"
    config.optimizer.base_learning_rate = 1e-3
    config.optimizer.reference_batch_size = 32
    config.optimizer.weight_decay = 0.05
    config.optimizer.warmup_epochs = 1.0
    config.optimizer.epochs = 12
    config.optimizer.clip_grad_norm = 1.0
    config.batch_size = 32
    config.eval_batch_size = 40
    config.shuffle_buffer = 800
    config.checkpoint.every_steps = 100
    config.checkpoint.keep = 2
    config.eval_every_epochs = 4
    config.log_every_steps = 5
    return config
