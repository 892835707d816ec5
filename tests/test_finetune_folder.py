"""The README's "Fine-tune on your own videos": its four commands (build, train, evaluate, predict) on generated
class-folder videos, with a tiny Hugging Face Timesformer (random weights, made by transformers itself) as the
pretrained checkpoint whose architecture differs from the config's preset in every field."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("red", "green", "blue")


def write_folder(root: Path) -> None:
    from timesformer_jax.data.video_io import write_video

    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("validation", 2)):
        for channel, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                video = rng.integers(0, 60, (20, 48, 64, 3), dtype=np.uint8)
                video[..., channel] += 150  # each class a colour
                write_video(root / split / name / f"{name}{i}.mp4", video, fps=10)


def write_hf_checkpoint(path: Path) -> None:
    from timesformer_jax.bench.reference import import_torchvision_without_c_ops

    import_torchvision_without_c_ops()
    import torch
    from transformers import TimesformerConfig, TimesformerForVideoClassification

    torch.manual_seed(0)
    config = TimesformerConfig(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64, num_labels=5)  # Kinetics-like head
    TimesformerForVideoClassification(config).save_pretrained(path)


def run(args, cwd):
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout + result.stderr


@pytest.mark.slow
def test_the_four_readme_commands_fine_tune_on_a_folder(tmp_path):
    write_folder(tmp_path / "my_videos")
    write_hf_checkpoint(tmp_path / "pretrained")
    tools = REPO / "tools"
    run([tools / "build_dataset.py", "--dataset", "video_folder", "--manual_dir", "my_videos", "--data_dir", "tfds"],
        tmp_path)
    # the README's train command, with the tiny checkpoint and the small settings a CPU test needs
    output = run([tools / "train.py", "--config", f"{REPO}/configs/video_folder.py:tfds", "--workdir", "runs/mine",
                  "--config.init_checkpoint=pretrained", "--config.model.num_frames=4", "--config.model.image_size=32",
                  "--config.clip.sampling_rate=2", "--config.clip.target_fps=10", "--config.optimizer.epochs=2",
                  "--config.batch_size=4", "--config.eval_batch_size=6"], tmp_path)
    assert "classes: 3, from the prepared dataset video_folder/default" in output
    assert "evaluation split: validation" in output
    assert "architecture from config.init_checkpoint: patch_size=8" in output and "depth=2" in output
    stored = json.loads((tmp_path / "runs/mine/config.json").read_text())
    assert stored["model"]["num_classes"] == 3 and stored["model"]["hidden_size"] == 32

    output = run([tools / "eval.py", "--workdir", "runs/mine"], tmp_path)  # no --config: the stored one
    start = output.rindex('{\n  "step"')
    report = json.loads(output[start:output.index("\n}", start) + 2])
    assert report["step"] == 6 and 0 <= report["video_top1"] <= 1

    run([tools / "predict.py", "--checkpoint", "runs/mine", "my_videos/validation/red/red0.mp4", "--json",
         "p.json"], tmp_path)
    record = json.loads((tmp_path / "p.json").read_text())[0]
    assert {entry["label"] for entry in record["top_k"]} == set(CLASSES)
    assert record["protocol"]["sampling_rate"] == 2 and record["protocol"]["target_fps"] == 10.0
