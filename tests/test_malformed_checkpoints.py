"""Crafted and damaged checkpoint files: every reader refuses them with one ValueError naming the file (and the
tensor or field), and never reads memory outside what the file holds."""
import collections
import io
import json
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

import timesformer_jax
from timesformer_jax.convert.readers import read_source


def write_crafted_pth(path, views, storage_bytes=16):
    """A zip-format torch checkpoint {name: tensor} whose tensors are `_rebuild_tensor_v2` views (offset, size,
    stride) of one float32 storage of `storage_bytes` bytes, written without torch.save so the views can lie."""
    storage = object()

    class View:
        def __init__(self, offset, size, stride):
            self.args = offset, size, stride

        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (storage, *self.args, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is storage:
                return ("storage", torch.FloatStorage, "0", "cpu", storage_bytes // 4)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({name: View(*args) for name, args in views.items()})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/data/0", bytes(range(storage_bytes)))


# (offset, size, stride) of a 4-element float32 storage
CRAFTED_VIEWS = {
    "crash": (0, (4096,), (1 << 20,)),  # 4 GiB past the storage: unmapped memory
    "leak": (0, (16384,), (1,)),  # 64 KiB of the heap after the storage
    "negative_stride": (3, (4,), (-1,)),
    "huge_offset": (1 << 40, (2,), (1,)),
    "bad_rank": (0, (2, 2), (1,)),
}


def test_crafted_torch_views_are_refused_without_reading_outside_the_storage(tmp_path):
    # In a subprocess: before the bounds check, the first case killed the interpreter with SIGSEGV.
    for name, view in CRAFTED_VIEWS.items():
        write_crafted_pth(tmp_path / f"{name}.pth", {"blocks.0.weight": view})
    write_crafted_pth(tmp_path / "fits.pth", {"w": (1, (3,), (1,)), "t": (0, (2, 2), (1, 2)), "e": (9, (0,), (1,))})
    script = textwrap.dedent(f"""
        import sys
        from timesformer_jax.convert.readers.torch_pickle import load_torch_file
        for name in {list(CRAFTED_VIEWS)!r}:
            try:
                load_torch_file(sys.argv[1] + "/" + name + ".pth")
                print(name, "READ")
            except ValueError as e:
                print(name, "REFUSED", e)
        fits = load_torch_file(sys.argv[1] + "/fits.pth")
        print("fits", fits["w"].tolist(), fits["t"].tolist(), fits["e"].shape)
    """)
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"reader crashed (status {run.returncode}): {run.stderr[-2000:]}"
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    for name in CRAFTED_VIEWS:
        assert lines[name].startswith("REFUSED"), (name, lines[name])
        assert f"{name}.pth" in lines[name] and "'blocks.0.weight'" in lines[name], lines[name]
    # The storage holds bytes 0..15: float32 elements are those bytes four at a time; views inside it still read.
    elements = np.frombuffer(bytes(range(16)), np.float32)
    assert lines["fits"] == (f"{elements[1:4].tolist()} {elements[[[0, 2], [1, 3]]].tolist()} (0,)")


def test_legacy_storage_with_a_false_element_count_is_refused(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(4)}, path, _use_new_zipfile_serialization=False)
    data = bytearray(path.read_bytes())
    # The storage's int64 element count sits just before its 16 bytes at the end of the file.
    count_at = len(data) - 16 - 8
    assert struct.unpack("<q", data[count_at:count_at + 8])[0] == 4
    data[count_at:count_at + 8] = struct.pack("<q", 1 << 60)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="legacy.pth.*more than the rest of the file"):
        read_source(path)


def hf_dir(tmp_path, config, name="ckpt"):
    directory = tmp_path / name
    directory.mkdir()
    (directory / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return directory


@pytest.mark.parametrize("target", ["../outside.safetensors", "/tmp/outside.safetensors", "sub/../../outside.safetensors"])
def test_shard_index_cannot_name_files_outside_the_checkpoint(tmp_path, target):
    from safetensors.numpy import save_file

    save_file({"cls_token": np.zeros((1, 1, 8), np.float32)}, str(tmp_path / "outside.safetensors"))
    directory = hf_dir(tmp_path, {"model_type": "vit", "num_attention_heads": 2})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"cls_token": target}}))
    with pytest.raises(ValueError, match=r"model.safetensors.index.json: shard .* outside the checkpoint"):
        read_source(directory)


def test_shard_index_reads_links_into_a_hub_blob_store(tmp_path):
    # A Hub cache snapshot's files are links to ../../blobs/<hash>: the names are checked, not their targets.
    from safetensors.numpy import save_file

    blobs = tmp_path / "blobs"
    blobs.mkdir()
    save_file({"a": np.arange(3, dtype=np.float32)}, str(blobs / "h1"))
    directory = hf_dir(tmp_path, {"model_type": "vit"}, name="snapshot")
    (directory / "model-00001.safetensors").symlink_to(blobs / "h1")
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00001.safetensors"}}))
    from timesformer_jax.convert.readers.hf_files import read_hf_weights

    np.testing.assert_array_equal(read_hf_weights(directory)["a"], np.arange(3, dtype=np.float32))


@pytest.mark.parametrize("index", ["{", "[]", '{"weight_map": null}', '{"weight_map": {}}'])
def test_damaged_shard_index_names_the_file(tmp_path, index):
    directory = hf_dir(tmp_path, {"model_type": "vit"})
    (directory / "model.safetensors.index.json").write_text(index)
    with pytest.raises(ValueError, match="model.safetensors.index.json"):
        read_source(directory)


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


@pytest.mark.parametrize("content", [
    safetensors_bytes({"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}, b"\0" * 16),
    safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16)[:8]
    + b"\xff" * 8,
    struct.pack("<Q", 1 << 40) + b"{}",
    safetensors_bytes({"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 16]}}, b"\0" * 16),
], ids=["data_past_end", "garbage_header", "huge_header_length", "shape_exceeds_span"])
def test_crafted_safetensors_headers_are_refused(tmp_path, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="model.safetensors"):
        read_source(path)


def test_npz_with_pickled_or_lying_arrays_is_refused(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"embedding/kernel": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="pickled.npz"):
        read_source(pickled)
    # A member whose header promises more elements than its bytes hold.
    lying = tmp_path / "lying.npz"
    member = io.BytesIO()
    np.save(member, np.zeros(4, np.float32))
    raw = member.getvalue().replace(b"(4,)", b"(9999999,)".ljust(4))
    with zipfile.ZipFile(lying, "w") as archive:
        archive.writestr("embedding/kernel.npy", raw)
    with pytest.raises(ValueError, match="lying.npz"):
        read_source(lying)


@pytest.mark.parametrize("config, field", [
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ("null", "JSON object"),
    ({"model_type": "timesformer", "num_attention_heads": 0}, "num_attention_heads must be a positive integer, got 0"),
    ({"model_type": "timesformer", "num_attention_heads": "4"}, "num_attention_heads must be a positive integer, got '4'"),
    ({"model_type": "timesformer", "layer_norm_eps": "tiny"}, "layer_norm_eps must be a positive number, got 'tiny'"),
    ({"model_type": "timesformer", "num_frames": 0}, "num_frames must be a positive integer, got 0"),
    ({"model_type": "timesformer", "num_frames": -3}, "num_frames must be a positive integer, got -3"),
    ({"model_type": "timesformer", "attention_type": "diagonal"}, "attention_type must be one of"),
    ({"model_type": "vit", "qkv_bias": "yes"}, "qkv_bias must be true or false"),
])
def test_malformed_hf_config_names_the_file_and_field(tmp_path, config, field):
    directory = hf_dir(tmp_path, config)
    with pytest.raises(ValueError, match="config.json") as error:
        timesformer_jax.load_pretrained(directory)
    assert field in str(error.value)


def test_dangling_config_link_says_what_is_missing(tmp_path):
    directory = tmp_path / "snapshot"
    directory.mkdir()
    (directory / "config.json").symlink_to(tmp_path / "blobs" / "gone")
    with pytest.raises(ValueError, match="config.json is a link to a missing file"):
        timesformer_jax.load_pretrained(directory)


CONVERTED = {"format": "timesformer_jax/converted-v1", "model": dict(
    num_classes=10, attention_type="divided_space_time", image_size=32, num_frames=4, patch_size=8, in_channels=3,
    hidden_size=64, depth=2, num_heads=2, mlp_dim=128, qkv_bias=True, layer_norm_eps=1e-6)}


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("model"), "expected a 'model' object"),
    (lambda c: c["model"].update(colour="red"), r"unknown TimeSformer field\(s\) \['colour'\]"),
    (lambda c: c["model"].update(image_size="abc"), "image_size must be a positive integer or a"),
    (lambda c: c["model"].update(num_heads=0), "num_heads must be a positive integer, got 0"),
    (lambda c: c["model"].update(num_heads=3), "num_heads=3 does not divide hidden_size=64"),
    (lambda c: c.update(model=[1]), "expected a 'model' object"),
])
def test_edited_converted_config_names_the_file_and_field(tmp_path, edit, message):
    config = json.loads(json.dumps(CONVERTED))
    edit(config)
    directory = tmp_path / "converted"
    directory.mkdir()
    (directory / "timesformer.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message) as error:
        timesformer_jax.load_pretrained(directory)
    assert "timesformer.json" in str(error.value)


def test_damaged_training_config_names_the_file(tmp_path):
    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    for text, message in (("{", "not valid JSON"), ("[]", "JSON object"),
                          (json.dumps({"model": {"num_heads": 0}}), "num_heads must be a positive integer")):
        (workdir / "config.json").write_text(text)
        with pytest.raises(ValueError, match=message) as error:
            timesformer_jax.load_pretrained(workdir)
        assert str(workdir / "config.json") in str(error.value)


def test_a_hub_id_not_in_the_cache_names_the_download_command(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="`hf download nobody/no-such-model`") as error:
        timesformer_jax.load_pretrained("nobody/no-such-model")
    assert "huggingface-cli" not in str(error.value)  # the installed huggingface_hub ships `hf` only
