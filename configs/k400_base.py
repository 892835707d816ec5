"""TimeSformer (base) on Kinetics-400, the paper's main setting: 8 frames x 224^2, sampling rate 32.

    python tools/train.py --config configs/k400_base.py --workdir ~/runs/k400_base \
        --config.init_checkpoint=~/weights/vit_base_in21k_converted --config.dataset.data_dir=~/tfds
    python tools/train.py --config configs/k400_base.py:joint_space_time ...   # another attention scheme

Official recipe: SGD momentum 0.9, weight decay 1e-4, lr 0.005 per 64 clips (scaled linearly with
`batch_size`), x0.1 at epochs 11 and 14 of 15; scale jitter 256-320, random 224 crop, flip; test on
1 temporal clip x 3 spatial crops. Initialise from an ImageNet-21k ViT-B/16 (`init_checkpoint`: a converted
directory or the .npz / timm / HF checkpoint itself). Mixed precision: bfloat16 compute, float32 parameters.
"""
from timesformer_jax.train.config import base_config


def get_config(attention_type: str = "divided_space_time"):
    config = base_config("timesformer_base", attention_type or "divided_space_time")
    config.model.dtype = "bfloat16"
    config.clip.dtype = "uint8"  # normalised on the device: 1 byte per value through the host and over PCIe
    return config
