"""Fine-tune a Kinetics-400 TimeSformer (base) on UCF101 split 1 (101 classes; a fresh classifier head).

    python tools/train.py --config configs/ucf101_finetune.py --workdir ~/runs/ucf101 \
        --config.init_checkpoint=~/weights/TimeSformer_divST_8x32_224_K400.pyth

Our choice of schedule for a small dataset started from a video model (the paper reports no UCF101 recipe):
SGD lr 0.001 per 64 clips, 8 epochs with x0.1 at epochs 5 and 7; `--config.dataset.config=split2|split3`
for the other official splits. UCF101 videos run at 25 fps and are short, so the test takes 3 temporal
clips x 3 spatial crops.
"""
from timesformer_jax.train.config import base_config


def get_config(attention_type: str = "divided_space_time"):
    config = base_config("timesformer_base", attention_type or "divided_space_time")
    config.model.num_classes = 101
    config.model.dtype = "bfloat16"
    config.clip.dtype = "uint8"  # normalised on the device: 1 byte per value through the host and over PCIe
    config.clip.sampling_rate = 8
    config.clip.num_temporal_views = 3
    config.dataset.name = "ucf101_local"
    config.dataset.config = "split1"
    config.dataset.eval_split = "test"
    config.optimizer.base_learning_rate = 0.001
    config.optimizer.epochs = 8
    config.schedule.decay_epochs = [5, 7]
    return config
