"""Fine-tune a TimeSformer on your own videos: a folder `<split>/<class>/<video>` prepared with
`tools/build_dataset.py --dataset video_folder`.

    python tools/build_dataset.py --dataset video_folder --manual_dir ~/my_videos --data_dir ~/tfds
    python tools/train.py --config configs/video_folder.py:~/tfds --workdir ~/runs/mine \
        --config.init_checkpoint=TimeSformer_divST_8x32_224_K400.pyth
    python tools/eval.py --workdir ~/runs/mine
    python tools/predict.py --checkpoint ~/runs/mine new_clip.mp4

Argument: the `--data_dir` the folder was built into (default: TFDS's). The class count and the evaluation split
(`validation`, else `test`) come from the prepared dataset; with `--config.init_checkpoint` (any format
`tools/convert.py` reads, a converted directory or another training workdir) the architecture comes from the
checkpoint, so frames, image size, scheme and classes are all the config decides. The recipe: SGD with momentum,
lr 0.005 per 64 clips scaled to the batch of 8, 15 epochs with x0.1 at 11 and 14 (the official fine-tuning
schedule), evaluated every epoch with 1 clip x 3 crops.
"""
import os

from timesformer_jax.train.config import base_config


def get_config(data_dir: str = ""):
    config = base_config("timesformer_base", "divided_space_time")
    config.dataset.name = "video_folder"
    config.dataset.config = "default"
    config.dataset.data_dir = os.path.expanduser(data_dir) if data_dir else None
    config.dataset.infer_classes = True
    config.dataset.eval_split = "auto"
    config.batch_size = 8
    config.eval_batch_size = 24  # 8 videos x 3 crops
    config.checkpoint.every_steps = 500
    config.log_every_steps = 10
    return config
