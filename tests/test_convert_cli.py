"""`timesformer convert` (`tools/convert.py`): output that `load_pretrained` reads, clear errors, and nothing written on failure."""
import json
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

import timesformer_jax
from timesformer_jax.convert.conversion import convert_checkpoint
from torch_reference import official_state_dict, randomised_hf_model
from vit_reference import HEADS, timm_vit, write_google_npz

from timesformer_jax.cli import convert as convert_cli


def run(*args) -> int:
    return convert_cli.main([str(a) for a in args])


@pytest.fixture
def timm_pth(tmp_path):
    path = tmp_path / "inputs" / "vit.pth"
    path.parent.mkdir()
    torch.save(timm_vit(num_classes=10).state_dict(), path)
    return path


def test_cli_output_loads_with_load_pretrained(tmp_path, timm_pth, capsys):
    out = tmp_path / "converted"
    assert run("--source", "timm", "--input", timm_pth, "--output", out, "--preset", "timesformer_tiny",
               "--num-heads", HEADS, "--num-classes", 5, "--num-frames", 6, "--image-size", 48,
               "--attention-type", "sparse_local_global") == 0
    printed = capsys.readouterr().out
    assert "29 tensors mapped from the checkpoint" in printed  # 32 less pos_embed and the 10-class head
    assert "pos_embed: 4x4 -> 6x6 patch grid (bilinear)" in printed
    assert "head (5 classes): the checkpoint's head has 10 classes, the model 5" in printed
    model = timesformer_jax.load_pretrained(out)
    assert model.config["attention_type"] == "sparse_local_global" and model.config["num_classes"] == 5
    _, expected, _ = convert_checkpoint(
        timm_pth, "timm", preset="timesformer_tiny", num_heads=HEADS, num_classes=5, num_frames=6, image_size=48,
        attention_type="sparse_local_global",
    )
    for got, want in zip(*(jax_leaves(t) for t in (model.params, expected))):
        np.testing.assert_array_equal(got, want)
    assert model(np.zeros((1, 6, 48, 48, 3), np.float32)).shape == (1, 5)
    stored = json.loads((out / "timesformer.json").read_text())
    assert stored["conversion"]["source"] == "timm" and stored["model"]["image_size"] == 48
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "inputs"]  # no staging left behind
    with pytest.raises(ValueError, match="overrides that change parameter shapes need a new conversion"):
        timesformer_jax.load_pretrained(out, num_classes=3)


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_official_checkpoint_to_more_frames(tmp_path):
    hf = randomised_hf_model("divided_space_time")  # 4 frames
    torch.save({"model_state": official_state_dict(hf)}, tmp_path / "official.pyth")
    out = tmp_path / "k400_6f"
    assert run("--source", "official", "--input", tmp_path / "official.pyth", "--output", out,
               "--num-heads", HEADS, "--num-frames", 6) == 0
    model = timesformer_jax.load_pretrained(out)
    assert model.config["num_frames"] == 6 and model.config["num_classes"] == hf.config.num_labels
    time_embed = hf.timesformer.embeddings.time_embeddings.detach()
    reference = F.interpolate(time_embed.transpose(1, 2), size=6, mode="linear", align_corners=True).transpose(1, 2)
    np.testing.assert_allclose(np.asarray(model.params["time_embed"]), reference.numpy(), atol=1e-6)
    original = timesformer_jax.load_pretrained(tmp_path / "official.pyth", num_heads=HEADS)
    np.testing.assert_array_equal(
        np.asarray(model.params["blocks_1"]["temporal_fc"]["kernel"]),
        np.asarray(original.params["blocks_1"]["temporal_fc"]["kernel"]),
    )


def _truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_inputs(tmp_path: Path) -> dict:
    """Name -> (input file, source, a phrase the error must contain)."""
    vit = timm_vit(num_classes=10)
    torch.save(vit.state_dict(), tmp_path / "trunc.pth")
    safetensors.torch.save_file(vit.state_dict(), tmp_path / "trunc.safetensors")
    write_google_npz(tmp_path / "trunc.npz", layout="original", num_classes=3, pre_logits=False)
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7), "bn1.weight": torch.ones(8), "fc.weight": torch.zeros(5, 8)},
               tmp_path / "resnet.pth")
    torch.save(timm_vit(init_values=1e-5).state_dict(), tmp_path / "layerscale.pth")  # LayerScale: not a plain ViT
    mixed = vit.state_dict()
    wider = timm_vit(embed_dim=64, num_heads=4).state_dict()
    mixed.update({k: v for k, v in wider.items() if k.startswith("blocks.1.")})
    torch.save(mixed, tmp_path / "mixed_width.pth")
    return {
        "truncated_pth": (_truncated(tmp_path / "trunc.pth"), "timm", "truncated or corrupt"),
        "truncated_safetensors": (_truncated(tmp_path / "trunc.safetensors"), "timm", "cannot read safetensors"),
        "truncated_npz": (_truncated(tmp_path / "trunc.npz"), "npz", "cannot read"),
        "non_vit": (tmp_path / "resnet.pth", "timm", "not a ViT or TimeSformer checkpoint: no 'cls_token'"),
        "unknown_tensors": (tmp_path / "layerscale.pth", "timm", "unexpected (4): blocks.0.ls1.gamma"),
        "width_mismatch": (tmp_path / "mixed_width.pth", "timm",
                           "blocks.1.attn.qkv.weight: got (192, 64), expected (144, 48)"),
    }


BAD = ["truncated_pth", "truncated_safetensors", "truncated_npz", "non_vit", "unknown_tensors", "width_mismatch"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys, case):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path, source, phrase = _bad_inputs(inputs)[case]
    out = tmp_path / "out"
    assert run("--source", source, "--input", path, "--output", out, "--num-heads", HEADS) == 1
    err = capsys.readouterr().err
    assert phrase in err and "nothing was written" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


def test_existing_output_is_kept_unless_overwrite(tmp_path, timm_pth, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run("--input", timm_pth, "--output", out, "--num-heads", HEADS, "--preset", "timesformer_tiny") == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert run("--input", timm_pth, "--output", out, "--num-heads", HEADS, "--preset", "timesformer_tiny",
               "--overwrite") == 0
    assert not (out / "keep.txt").exists() and (out / "timesformer.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "out"]


def test_failure_while_writing_leaves_nothing(tmp_path, timm_pth, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run("--input", timm_pth, "--output", tmp_path / "out", "--num-heads", HEADS, "--preset", "timesformer_tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


def test_architecture_comes_from_the_checkpoint(timm_pth):
    with pytest.raises(ValueError, match="hidden_size=64 was asked for, but the checkpoint's tensors have hidden_size=48"):
        convert_checkpoint(timm_pth, preset="timesformer_tiny", hidden_size=64, num_heads=HEADS)
    with pytest.raises(ValueError, match="not a positive multiple of the patch size 8"):
        convert_checkpoint(timm_pth, preset="timesformer_tiny", image_size=36, num_heads=HEADS)
    with pytest.raises(ValueError, match=r"cannot infer the head count.*--num_heads"):
        convert_checkpoint(timm_pth, preset="timesformer_base")  # width 48: no preset match, not 64 per head
