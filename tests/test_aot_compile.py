"""Ahead-of-time compilation for hardware we do not have (`timesformer_jax/aot/`, `tools/aot_compile.py`).

TPU targets compile through libtpu (the `tpu` extra, part of `test`) on compile-only devices: nothing runs.
References: Google's published accelerator type -> topology tables, the analytic FLOP count of
`model/flops.py` (itself checked against the paper's layouts), and invariants of sharding (per-chip memory
shrinks when the same global batch is split over more chips).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from timesformer_jax.aot import compile_config, format_report, parse_target, target_devices
from timesformer_jax.aot.collectives import collectives
from timesformer_jax.aot.compile import TRAIN_FLOPS_PER_FORWARD, mesh_for_batch
from timesformer_jax.train.saved_step import load_train_step, save_train_step
from timesformer_jax.model.flops import forward_flops
from timesformer_jax.train.config import base_config

pytest.importorskip("libtpu", reason="the `tpu` extra (libtpu) compiles for TPU slices")


def tiny_config(batch: int = 8):
    config = base_config("timesformer_tiny")
    config.model.update(image_size=64, num_frames=4, patch_size=16, hidden_size=128, depth=2, num_heads=4,
                        mlp_dim=512, num_classes=10)
    config.batch_size = batch
    config.eval_batch_size = batch
    return config


# (accelerator type, chips, topology) from cloud.google.com/tpu/docs/{v4,v5p,v5e,v6e}, "Configurations": the
# v4 / v5p suffix counts TensorCores (two per chip), the v5e / v6e suffix counts chips.
PUBLISHED = [
    ("v4-8", 4, "v4:2x2x1"), ("v4-16", 8, "v4:2x2x2"), ("v4-32", 16, "v4:2x2x4"), ("v4-64", 32, "v4:2x4x4"),
    ("v4-128", 64, "v4:4x4x4"), ("v4-256", 128, "v4:4x4x8"), ("v4-512", 256, "v4:4x8x8"),
    ("v4-4096", 2048, "v4:8x16x16"),
    ("v5p-8", 4, "v5p:2x2x1"), ("v5p-128", 64, "v5p:4x4x4"), ("v5p-256", 128, "v5p:4x4x8"),
    ("v5p-1024", 512, "v5p:8x8x8"), ("v5p-12288", 6144, "v5p:16x16x24"),
    ("v5litepod-1", 1, "v5e:1x1"), ("v5litepod-4", 4, "v5e:2x2"), ("v5litepod-8", 8, "v5e:2x4"),
    ("v5litepod-16", 16, "v5e:4x4"), ("v5litepod-64", 64, "v5e:8x8"), ("v5litepod-256", 256, "v5e:16x16"),
    ("v6e-8", 8, "v6e:2x4"), ("v6e-32", 32, "v6e:4x8"), ("v6e-256", 256, "v6e:16x16"),
]


@pytest.mark.parametrize("name, chips, topology", PUBLISHED)
def test_accelerator_types_map_to_the_published_topologies(name, chips, topology):
    target = parse_target(name)
    assert (target.platform, target.num_devices, target.topology) == ("tpu", chips, topology)
    assert math.prod(int(d) for d in topology.split(":")[1].split("x")) == chips


def test_raw_topologies_and_gpu_targets():
    assert parse_target("v5p:4x4x8").num_devices == 128
    assert parse_target("v5e:2x2").topology == "v5e:2x2"
    gpus = parse_target("h100x8", num_hosts=2)
    assert (gpus.platform, gpus.num_devices, gpus.topology, gpus.chip.name) == ("cuda", 16, "1x2x8", "h100")
    assert parse_target("h200").num_devices == 1


@pytest.mark.parametrize("bad", ["v5p-100", "v4-6", "v5litepod-3", "v7x-8", "h100x9", "tpu", "v5p-256x"])
def test_unknown_targets_name_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="accelerator type|GPUs per host|unknown target"):
        parse_target(bad)


def test_compile_only_devices_one_per_chip():
    for name, kind in (("v5e:2x2", "TPU v5 lite"), ("v4-8", "TPU v4"), ("v5p-8", "TPU v5")):
        devices = target_devices(parse_target(name))
        assert len(devices) == 4 and {d.device_kind for d in devices} == {kind}  # megacore: 1 device per chip


def test_mesh_for_batch_moves_unusable_devices_to_tensor():
    assert mesh_for_batch({"data": -1, "fsdp": 1, "tensor": 1}, (64, 64), 128) == {"data": 64, "fsdp": 1, "tensor": 2}
    assert mesh_for_batch({"data": -1, "fsdp": 1, "tensor": 1}, (256, 64), 128) == {"data": 64, "fsdp": 1, "tensor": 2}
    assert mesh_for_batch({"data": -1, "fsdp": 2, "tensor": 1}, (64, 64), 8) == {"data": 4, "fsdp": 2, "tensor": 1}
    # A layout the user fixed is kept (and then rejected with a message when the batch does not split).
    assert mesh_for_batch({"data": 8, "fsdp": 1, "tensor": 1}, (4, 4), 8) == {"data": 8, "fsdp": 1, "tensor": 1}


def test_collectives_counted_from_hlo_text():
    hlo = """
  %all-gather.6 = bf16[4096,1024]{1,0:T(8,128)(2,1)} all-gather(%convert), channel_id=2, dimensions={0}
  ROOT %all-reduce = f32[]{:T(128)} all-reduce(%fusion), channel_id=3, to_apply=%add
  %ags = (f32[8,4]{1,0}, f32[32,4]{1,0}) all-gather-start(f32[8,4]{1,0} %p), dimensions={0}
  %agd = f32[32,4]{1,0} all-gather-done(%ags)
  %rs = (f32[8]{0}, bf16[2,2]{1,0}) reduce-scatter(%a, %b), dimensions={0}
  %not = f32[4]{0} add(%all-reduce.1, %x)
"""
    assert collectives(hlo) == {
        "all-gather": {"count": 2, "bytes": 4096 * 1024 * 2 + 32 * 4 * 4},
        "all-reduce": {"count": 1, "bytes": 4},
        "reduce-scatter": {"count": 1, "bytes": 8 * 4 + 4 * 2},
    }


def test_tiny_model_on_a_small_tpu_slice_fits_and_matches_the_analytic_flops():
    config = tiny_config(batch=8)
    report = compile_config(config, parse_target("v5e:2x2"))
    forward = forward_flops(config.model.to_dict())["needed"]
    train, evaluation = report.steps["train"], report.steps["eval"]
    assert report.num_devices == 4 and report.device_kind == "TPU v5 lite"
    assert report.mesh == {"data": 4, "fsdp": 1, "tensor": 1}
    for step in (train, evaluation):
        assert step.fits and step.error is None
        assert step.memory_per_device["total"] > 0 and step.memory_per_device["arguments"] > 0
        assert step.memory_per_device["capacity"] == 16 << 30
        assert step.flops_source == "xla" and step.roofline_seconds > 0 and step.compile_seconds > 0
    assert train.flops_per_step == pytest.approx(TRAIN_FLOPS_PER_FORWARD * forward * 8, rel=0.10)
    assert evaluation.flops_per_step == pytest.approx(forward * 8, rel=0.10)
    # Data parallelism: the gradients are summed over the four chips.
    assert "all-reduce" in train.collectives
    # The roofline is never below the compute bound at the chip's peak (v5e: 197 TFLOP/s).
    assert train.roofline_seconds >= train.flops_per_step / 4 / 197e12
    text = format_report(report)
    assert "v5e:2x2" in text and "train" in text and "eval" in text


@pytest.mark.slow
def test_per_chip_memory_shrinks_when_the_batch_is_split_over_more_chips():
    config = tiny_config(batch=32)
    one = compile_config(config, parse_target("v5e:1x1"), steps=("train",)).steps["train"]
    four = compile_config(config, parse_target("v5e:2x2"), steps=("train",)).steps["train"]
    assert four.memory_per_device["temporaries"] < one.memory_per_device["temporaries"]
    assert four.memory_per_device["total"] < one.memory_per_device["total"]
    # The same work in total, split four ways: the per-chip compute bound drops accordingly.
    assert four.flops_per_step == pytest.approx(one.flops_per_step, rel=0.05)


@pytest.mark.slow
def test_fsdp_shards_the_parameters_and_gathers_them():
    config = tiny_config(batch=8)
    config.mesh.update(data=1, fsdp=-1)
    fsdp = compile_config(config, parse_target("v5e:2x2"), steps=("train",)).steps["train"]
    config.mesh.update(data=-1, fsdp=1)
    replicated = compile_config(config, parse_target("v5e:2x2"), steps=("train",)).steps["train"]
    assert fsdp.memory_per_device["arguments"] < replicated.memory_per_device["arguments"]
    assert "all-gather" in fsdp.collectives


def test_an_oversized_batch_is_reported_as_not_fitting():
    config = tiny_config(batch=65536)
    step = compile_config(config, parse_target("v5e:1x1"), steps=("train",)).steps["train"]
    assert not step.fits
    assert step.memory_per_device["total"] > step.memory_per_device["capacity"]
    # The arguments are known without the compiler: the video batch alone is 65536 x 4 x 64 x 64 x 3 floats.
    assert step.memory_per_device["arguments"] >= 65536 * 4 * 64 * 64 * 3 * 4
    assert "memory" in step.error.lower()


def test_a_batch_that_does_not_split_is_a_clear_error():
    config = tiny_config(batch=6)
    config.mesh.update(data=4)
    with pytest.raises(ValueError, match="divisible by the batch-sharded devices"):
        compile_config(config, parse_target("v5e:2x2"))


def test_a_saved_compiled_step_runs_after_loading(tmp_path):
    """`--save` on the machine's own devices: the loaded executable computes what the jitted step computes."""
    def step(x, w):
        return jnp.tanh(x @ w).sum(axis=0)

    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 16)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(1).normal(size=(16, 4)), jnp.float32)
    save_train_step(jax.jit(step).lower(x, w).compile(), tmp_path / "step.bin", {"global_batch": 8})
    loaded = load_train_step(tmp_path / "step.bin", {"global_batch": 8})
    np.testing.assert_array_equal(np.asarray(loaded(x, w)), np.asarray(jax.jit(step)(x, w)))
    with pytest.raises(ValueError, match="global_batch: compiled for 8, this run has 16"):
        load_train_step(tmp_path / "step.bin", {"global_batch": 16})


@pytest.mark.slow
def test_scanned_blocks_compile_sharded_and_count_every_block():
    """XLA's cost analysis counts a loop body once, so a scanned model's report counts FLOPs analytically: the
    unrolled program's XLA count within 10% (as for the unrolled model above), never the one-block count."""
    reports = {}
    for scan in (False, True):
        config = tiny_config(batch=8)
        config.model.depth, config.model.scan_blocks, config.mesh.fsdp = 4, scan, 2
        reports[scan] = compile_config(config, parse_target("v5e:2x2"), steps=("train",))
    unrolled, scanned = reports[False].steps["train"], reports[True].steps["train"]
    assert reports[True].scan_blocks and "scanned" in format_report(reports[True])
    assert scanned.fits and scanned.flops_source == "analytic" and unrolled.flops_source == "xla"
    assert scanned.flops_per_step == pytest.approx(unrolled.flops_per_step, rel=0.10)
    assert "all-gather" in scanned.collectives  # the stacked kernels are sharded over fsdp and gathered per block
