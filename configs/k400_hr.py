"""TimeSformer-HR on Kinetics-400: 16 frames x 448^2, sampling rate 4 (the official HR config).

    python tools/train.py --config configs/k400_hr.py --workdir ~/runs/k400_hr --config.init_checkpoint=...

Frames are stored at shorter side 512 (`tools/build_dataset.py ... --short_side 512`) so the 448-512 scale
jitter never upsamples. Remat keeps the weight products (`dots_no_batch`, docs/scaling.md): 3136 tokens per clip. The optimiser recipe is the base one.
"""
from timesformer_jax.train.config import base_config


def get_config(attention_type: str = "divided_space_time"):
    config = base_config("timesformer_hr", attention_type or "divided_space_time")
    config.model.dtype = "bfloat16"
    config.model.remat = True
    config.model.remat_policy = "dots_no_batch"  # docs/scaling.md: half the memory of no remat, +2% FLOPs
    config.clip.dtype = "uint8"  # normalised on the device: 1 byte per value through the host and over PCIe
    config.clip.sampling_rate = 4
    config.clip.train_scale = [448, 512]
    config.dataset.short_side = 512
    return config
