"""TimeSformer-L on Kinetics-400: 96 frames x 224^2, sampling rate 4 (the official L config).

    python tools/train.py --config configs/k400_large.py --workdir ~/runs/k400_large --config.init_checkpoint=...

18816 tokens per clip: remat is on, and divided attention is the scheme that fits (joint attention over all
of them does not). The optimiser recipe is the base one.
"""
from timesformer_jax.train.config import base_config


def get_config(attention_type: str = "divided_space_time"):
    config = base_config("timesformer_large", attention_type or "divided_space_time")
    config.model.dtype = "bfloat16"
    config.model.remat = True
    config.clip.dtype = "bfloat16"
    config.clip.sampling_rate = 4
    return config
