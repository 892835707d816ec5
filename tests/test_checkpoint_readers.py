"""Reading checkpoint files: the torch-free unpickler, and clear errors for files that do not fit."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import timesformer_jax
from timesformer_jax.convert.readers.torch_pickle import OpaqueObject, load_torch_file
from torch_reference import official_state_dict, randomised_hf_model


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


SERIALIZATIONS = pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])


@SERIALIZATIONS
def test_reads_tensors_like_torch(tmp_path, zip_format):
    base = torch.randn(5, 6)
    saved = {
        "float": torch.randn(3, 4),
        "transposed": base.t(),  # non-contiguous view
        "slice": base[1:3, 2:],  # offset into a shared storage
        "half": torch.randn(7).half(),
        "bf16": torch.randn(2, 3).bfloat16(),
        "long": torch.arange(5),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5),
        "param": torch.nn.Parameter(torch.randn(2, 2)),
        "nested": [{"x": torch.ones(2)}, (1, "a")],
    }
    path = tmp_path / "t.pt"
    torch.save(saved, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_torch_file(path)
    for key in ("float", "transposed", "slice", "half", "long", "bool", "scalar", "param"):
        np.testing.assert_array_equal(loaded[key], saved[key].detach().numpy(), err_msg=key)
    np.testing.assert_array_equal(loaded["bf16"].astype(np.float32), saved["bf16"].float().numpy())
    np.testing.assert_array_equal(loaded["nested"][0]["x"], np.ones(2, np.float32))
    assert loaded["nested"][1] == (1, "a")


@SERIALIZATIONS
def test_unknown_classes_are_never_called(tmp_path, zip_format):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    payload = {"w": torch.ones(2), "payload": _RunsCodeWhenUnpickled(str(marker))}
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_torch_file(path)
    assert not marker.exists()
    assert isinstance(loaded["payload"], OpaqueObject)
    np.testing.assert_array_equal(loaded["w"], np.ones(2, np.float32))


@SERIALIZATIONS
def test_truncated_file_is_a_clear_error(tmp_path, zip_format):
    path = tmp_path / "model.pyth"
    state = {"model_state": official_state_dict(randomised_hf_model("divided_space_time"))}
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.pyth"):
        timesformer_jax.load_pretrained(path, num_heads=3)


def test_legacy_files_are_read_without_torch(tmp_path):
    # timm's early releases (jx_vit_base_p16_224-80ecf9dd.pth) predate the zip format; torch is a test-only
    # dependency, so the reader must not need it: block its import in a fresh interpreter.
    path = tmp_path / "legacy.pth"
    expected = {"w": torch.randn(3, 2), "b": torch.randn(2).half()}
    torch.save(expected, path, _use_new_zipfile_serialization=False)
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from timesformer_jax.convert.readers.torch_pickle import load_torch_file\n"
        f"state = load_torch_file({str(path)!r})\n"
        f"np.savez({str(tmp_path / 'out.npz')!r}, **state)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with np.load(tmp_path / "out.npz") as got:
        for key, tensor in expected.items():
            np.testing.assert_array_equal(got[key], tensor.numpy())


def test_mismatched_keys_are_listed(tmp_path):
    state = official_state_dict(randomised_hf_model("divided_space_time"))
    del state["model.blocks.1.temporal_fc.bias"]
    state["model.blocks.0.extra.weight"] = torch.zeros(3)
    state["model.blocks.1.mlp.fc1.weight"] = torch.zeros(5, 48)
    path = tmp_path / "bad.pyth"
    torch.save({"model_state": state}, path)
    with pytest.raises(ValueError) as err:
        timesformer_jax.load_pretrained(path, num_heads=3)
    message = str(err.value)
    assert "missing (1): blocks.1.temporal_fc.bias" in message
    assert "unexpected (1): blocks.0.extra.weight" in message
    assert "mis-shaped (1): blocks.1.mlp.fc1.weight: got (5, 48), expected (96, 48)" in message


def test_not_a_timesformer_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}, path)
    with pytest.raises(ValueError, match="not a ViT or TimeSformer checkpoint"):
        timesformer_jax.load_pretrained(path)
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="not a Hugging Face ViT or Timesformer checkpoint"):
        timesformer_jax.load_pretrained(other)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        timesformer_jax.load_pretrained(tmp_path / "missing.pyth")


def test_overrides_are_checked(tmp_path):
    randomised_hf_model("joint_space_time").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="unknown TimeSformer field"):
        timesformer_jax.load_pretrained(tmp_path, num_head=3)
    model = timesformer_jax.load_pretrained(tmp_path, dropout_rate=0.1)
    assert model.config["dropout_rate"] == 0.1 and model.config["attention_type"] == "joint_space_time"


def test_integer_video_is_rejected(tmp_path):
    randomised_hf_model("divided_space_time").save_pretrained(tmp_path)
    model = timesformer_jax.load_pretrained(tmp_path)
    with pytest.raises(ValueError, match="expected float video"):
        model(np.zeros((1, 4, 32, 32, 3), np.uint8))
