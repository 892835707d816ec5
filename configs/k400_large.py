"""TimeSformer-L on Kinetics-400: 96 frames x 224^2, sampling rate 4 (the official L config).

    python tools/train.py --config configs/k400_large.py --workdir ~/runs/k400_large --config.init_checkpoint=...

18816 tokens per clip. Remat keeps the weight products (`dots_no_batch`): on a v5p chip at one clip, 7.5 GiB
against 14.2 without remat and 3.3 keeping nothing, for 2% more FLOPs instead of 26% (docs/scaling.md). Joint
attention over all the tokens needs 1.8 TB at batch 8 with materialised scores; with cuDNN's fused kernel it fits
an H100 but costs 3.5x divided's FLOPs; on TPUs an unset attention_impl runs it with the splash kernel (5.1 GiB
per v5p chip at one clip, docs/scaling.md). The 24 blocks are scanned (`scan_blocks`): the v5p-8 train step
compiles in 52 s instead of 165 s, for 9.7 GiB per chip instead of 7.5. The optimiser recipe is the base one.
"""
from timesformer_jax.train.config import base_config


def get_config(attention_type: str = "divided_space_time"):
    config = base_config("timesformer_large", attention_type or "divided_space_time")
    config.model.dtype = "bfloat16"
    config.model.remat = True
    config.model.remat_policy = "dots_no_batch"  # docs/scaling.md: half the memory of no remat, +2% FLOPs
    config.model.scan_blocks = True  # docs/scaling.md: a third of the compile time, remat applied per block
    config.clip.dtype = "uint8"  # normalised on the device: 1 byte per value through the host and over PCIe
    config.clip.sampling_rate = 4
    return config
