"""TimeSformer (base) on Something-Something-v2: 8 frames x 224^2, segment sampling, 174 classes.

    python tools/train.py --config configs/ssv2_base.py --workdir ~/runs/ssv2 --config.init_checkpoint=...

SSv2 labels name directions ("pushing something from left to right"), so flips are off. Clips take one frame
per segment (random in training, the middle at test); test on 1 clip x 3 spatial crops. The optimiser recipe
is the base one.
"""
from timesformer_jax.train.config import base_config


def get_config(attention_type: str = "divided_space_time"):
    config = base_config("timesformer_base", attention_type or "divided_space_time")
    config.model.num_classes = 174
    config.model.dtype = "bfloat16"
    config.clip.dtype = "uint8"  # normalised on the device: 1 byte per value through the host and over PCIe
    config.clip.sampling = "segment"
    config.clip.flip = False
    config.dataset.name = "something_something_v2"
    config.dataset.config = None
    return config
