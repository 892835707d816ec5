"""The Kinetics-400-in-10-minutes plan, worked out from a compiled report (tools/aot_compile.py --json).

    python tools/aot_compile.py --config configs/k400_base.py --target v5p-256 --config.batch_size=1024 \
        --config.eval_batch_size=1024 --json docs/aot_results/plan_k400_base__v5p-256.json
    python benchmarks/pod_plan.py --report docs/aot_results/plan_k400_base__v5p-256.json

Everything printed is arithmetic on the report's numbers (FLOPs, HBM traffic, memory, the chip's published
figures) and on the inputs given as flags, each named in the output: the schedule (15 epochs of ~240k clips), the
validation set, the input pipeline's measured clips/s per core (docs/data.md), the MFU assumed for a realistic
step time, the host count and the checkpoint bandwidth. Nothing here is a measurement on a TPU.
"""
from __future__ import annotations

import json

from absl import app, flags

_REPORT = flags.DEFINE_string("report", None, "JSON from tools/aot_compile.py with train and eval steps.")
_TRAIN_CLIPS = flags.DEFINE_integer("train_clips", 240_000, "Training clips per epoch (Kinetics-400: ~240k).")
_EPOCHS = flags.DEFINE_integer("epochs", 15, "Epochs (the official recipe: 15).")
_VAL_VIDEOS = flags.DEFINE_integer("val_videos", 20_000, "Validation videos (Kinetics-400: ~20k).")
_VIEWS = flags.DEFINE_integer("views", 3, "Views per validation video (official: 1 temporal x 3 spatial).")
_EVALS = flags.DEFINE_integer("evaluations", 1, "Full evaluations during the run.")
_CORE_RATE = flags.DEFINE_float("clips_per_core", 37.4, "Input clips/s per host core (docs/data.md, measured).")
_HOSTS = flags.DEFINE_integer("hosts", 32, "Hosts of the slice (v5p-256: 32 VMs of 4 chips).")
_HOST_CORES = flags.DEFINE_integer("host_cores", 208, "vCPUs per host (v5p VM: 208).")
_MFU = flags.DEFINE_list("mfu", ["0.3", "0.5"], "Model FLOP utilisations to translate the compute bound at.")
_CKPT_GBPS = flags.DEFINE_float("checkpoint_gb_per_s", 1.0, "Assumed write bandwidth of one host to storage.")
flags.mark_flags_as_required(["report"])


def plan(report: dict, mfu: float) -> dict:
    from timesformer_jax.aot import parse_target

    chip = parse_target(report["target"]).chip
    train, evaluation = report["steps"]["train"], report["steps"]["eval"]
    batch, devices = report["global_batch"], report["num_devices"]
    steps = _TRAIN_CLIPS.value * _EPOCHS.value // batch
    compute = train["flops_per_step"] / devices / chip.peak_bf16_flops
    step_s = max(compute / mfu, train["hbm_traffic_bytes"] / chip.hbm_bytes_per_second)
    eval_steps = -(-_VAL_VIDEOS.value * _VIEWS.value // report["eval_batch"])
    eval_compute = evaluation["flops_per_step"] / devices / chip.peak_bf16_flops
    eval_step_s = max(eval_compute / mfu, evaluation["hbm_traffic_bytes"] / chip.hbm_bytes_per_second)
    # The donated state (parameters + optimizer state) of one chip, times the ways it is split (fsdp x tensor;
    # `data` replicas hold copies): the bytes one checkpoint writes.
    mesh = report["mesh"]
    state_bytes = train["memory_per_device"]["aliased"] * mesh["fsdp"] * mesh["tensor"]
    clips_per_s = batch / step_s
    return {
        "mfu": mfu, "steps": steps, "step_seconds": step_s, "train_minutes": steps * step_s / 60,
        "eval_minutes": _EVALS.value * eval_steps * eval_step_s / 60,
        "clips_per_second": clips_per_s, "clips_per_second_per_host": clips_per_s / _HOSTS.value,
        "cores_per_host_for_input": clips_per_s / _HOSTS.value / _CORE_RATE.value,
        "checkpoint_seconds": state_bytes / (_CKPT_GBPS.value * 1e9),  # one writer: replicated state
        "state_gb": state_bytes / 1e9,
    }


def main(argv):
    del argv
    report = json.loads(open(_REPORT.value).read())
    print(f"{report['target']}: {report['num_devices']} x {report['device_kind']}, mesh {report['mesh']}, global "
          f"batch {report['global_batch']}, eval batch {report['eval_batch']}; {_EPOCHS.value} epochs of "
          f"{_TRAIN_CLIPS.value} clips, {_EVALS.value} evaluation(s) of {_VAL_VIDEOS.value} x {_VIEWS.value} views")
    for mfu in (float(m) for m in _MFU.value):
        p = plan(report, mfu)
        print(f"MFU {mfu:.0%}: {p['steps']} steps of {1e3 * p['step_seconds']:.0f} ms = {p['train_minutes']:.1f} "
              f"min training + {60 * p['eval_minutes']:.1f} s evaluation; input {p['clips_per_second']:.0f} clips/s = "
              f"{p['clips_per_second_per_host']:.0f} per host = {p['cores_per_host_for_input']:.1f} of "
              f"{_HOST_CORES.value} cores at {_CORE_RATE.value} clips/s/core; a checkpoint ({p['state_gb']:.2f} GB "
              f"of state) {p['checkpoint_seconds']:.1f} s from one host at {_CKPT_GBPS.value} GB/s, asynchronous")


if __name__ == "__main__":
    app.run(main)
