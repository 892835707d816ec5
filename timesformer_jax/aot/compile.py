"""Compile a config's real train and eval steps for hardware we do not have, and read what the compiler says.

    report = compile_config(load_config_file("configs/k400_large.py"), parse_target("v5p-256"))
    report.steps["train"].fits, report.steps["train"].memory_per_device["total"]

The steps are the training loop's own (`train.experiment.step_functions`: same shardings, donation and dtypes),
lowered with sharded `jax.ShapeDtypeStruct` arguments over the target's compile-only devices, so nothing is
allocated. Per step and per device: XLA's memory analysis (arguments, outputs, temporaries, aliased), whether it
fits the chip, FLOPs (XLA's count where the backend gives one, else `model/flops.py`), the collectives in the
compiled HLO, compile time, and a roofline estimate of step time from the chip's published peak figures
(`aot/chips.py`): the larger of the FLOPs at peak compute (a hard lower bound) and the HBM traffic at peak
bandwidth, the traffic being XLA's own estimate on TPU ("bytes accessed": every top-level op's operands and
results) and only the arguments and outputs on GPU, where XLA gives no cost analysis (so GPU rows are the
compute bound alone, optimistic). A compile that runs out of memory is a report that says "does not fit", never an exception.
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
from pathlib import Path
from typing import Callable

import jax
import ml_collections

from timesformer_jax.aot.collectives import collectives
from timesformer_jax.aot.targets import Target, target_devices
from timesformer_jax.bench.compiled import CompiledCost, compiled_cost
from timesformer_jax.model.flops import forward_flops
from timesformer_jax.parallel import create_mesh
from timesformer_jax.parallel.mesh import MESH_AXES, resolve_mesh_shape
from timesformer_jax.train.config import model_fields
from timesformer_jax.train.saved_step import executable_meta, save_train_step
from timesformer_jax.train.experiment import (abstract_batches, abstract_state, experiment_without_data,
                                              step_functions)

# Forward + backward: the backward pass costs two forwards (one product for the input gradient, one for the
# weights), the usual "model FLOPs" count. Remat recomputes the forward once more on the hardware; XLA's own
# count includes that, ours does not.
TRAIN_FLOPS_PER_FORWARD = 3
# Steps per epoch the schedule is built with when compiling without a dataset: only the learning-rate boundaries
# (constants in the program) depend on it, not memory or FLOPs.
NOMINAL_STEPS_PER_EPOCH = 1000
_OUT_OF_MEMORY = re.compile(r"RESOURCE_EXHAUSTED|[Oo]ut of memory|exceeds.*memory|[Rr]an out of memory")


@dataclasses.dataclass
class StepReport:
    """What the compiler says about one step on one device (bytes; FLOPs for the whole step, all devices)."""

    memory_per_device: dict[str, int]  # arguments, outputs, temporaries, aliased, total, capacity
    fits: bool
    flops_per_step: float
    flops_source: str  # "xla" | "analytic"
    roofline_seconds: float  # max(compute_seconds, memory_seconds): the roofline estimate of the step's time
    roofline_bound: str  # "compute" | "memory": which term sets it
    hbm_traffic_bytes: float  # per device: XLA's "bytes accessed" (TPU), else arguments + outputs (GPU)
    compute_seconds: float  # FLOPs per device at the chip's peak bf16 rate: a hard lower bound
    memory_seconds: float  # hbm_traffic_bytes at the chip's peak HBM bandwidth
    clips_per_second: float  # clips / roofline_seconds: an upper bound
    compile_seconds: float
    collectives: dict[str, dict[str, int]]
    # Instructions XLA's own rematerialization pass recomputed to bring the program under the device's memory
    # (named `*.remat*` in the HLO): when positive, "fits" holds only at the price of recomputation that no FLOP
    # count here includes (on GPU the pass targets about 60 of the H100's 79 GiB).
    xla_rematerialized_ops: int = 0
    error: str | None = None  # the compiler's out-of-memory message when it refused the program

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class AotReport:
    target: str
    device_kind: str
    num_devices: int
    mesh: dict[str, int]
    global_batch: int
    eval_batch: int
    attention_type: str
    attention_impl: str  # what the compiled model uses: "xla", "cudnn", "splash" or "splash>=N" (XLA below N tokens)
    remat: bool
    remat_policy: str
    scan_blocks: bool
    steps: dict[str, StepReport]

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["steps"] = {name: step.to_json() for name, step in self.steps.items()}
        return data


def _memory(cost: CompiledCost, capacity: int) -> dict[str, int]:
    # Donated buffers that outputs reuse are counted in both arguments and outputs: counted once (`peak_bytes`).
    # Generated code lives in HBM too.
    return {"arguments": cost.argument_bytes, "outputs": cost.output_bytes, "temporaries": cost.temp_bytes,
            "aliased": cost.alias_bytes, "total": cost.peak_bytes + cost.code_bytes, "capacity": capacity}


def _oom_sizes(message: str) -> dict[str, int]:
    """Sizes the TPU compiler names in its out-of-memory message, in bytes ("the total memory required for HLO
    temporaries (164.81G) exceeds available HBM (15.75G)"); the ones it does not name are left out."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    found = {}
    patterns = {"total": r"hbm usage >= ([\d.]+)([KMGT])", "temporaries": r"temporaries \(([\d.]+)([KMGT])\)",
                "available": r"available HBM \(([\d.]+)([KMGT])\)", "arguments": r"arguments:? ([\d.]+)([KMGT])"}
    for label, pattern in patterns.items():
        if match := re.search(pattern, message, re.IGNORECASE):
            found[label] = int(float(match.group(1)) * units[match.group(2)])
    return found


def rematerialized_ops(hlo_text: str) -> int:
    """HLO instructions that XLA's rematerialization pass created (their names carry `.remat`)."""
    return len(re.findall(r"^\s*(?:ROOT\s+)?%?[\w.\-]*\.remat[\w.\-]*\s*=", hlo_text, re.MULTILINE))


def argument_bytes_per_device(args) -> int:
    """Bytes of one device's shards of `args` (sharded `jax.ShapeDtypeStruct`s): what an argument costs even when
    the compiler refuses the program."""
    total = 0
    for leaf in jax.tree.leaves(args):
        total += math.prod(leaf.sharding.shard_shape(leaf.shape)) * leaf.dtype.itemsize
    return total


def compile_step(step, args: tuple, target: Target, analytic_flops: float, clips: int,
                 xla_counts_everything: bool = True) -> tuple[StepReport, jax.stages.Compiled | None]:
    """Compile `step` (a jitted step with `.lower`) for sharded abstract `args` on `target`: (the report, the
    compiled executable, None when the compiler refused it for memory). `analytic_flops`: our count for the whole
    step, used when the backend gives none (GPU) or when XLA's would be short (`xla_counts_everything` False: its
    cost analysis counts a loop body once, so scanned blocks count as one, and a Pallas kernel as nothing); the HBM
    traffic is then arguments + outputs only."""
    chip = target.chip
    started = time.perf_counter()
    lowered = step.lower(*args)
    try:
        compiled = lowered.compile()
    except Exception as e:  # the compiler's error types differ per backend; only out-of-memory is a result
        message = str(e)
        if not _OUT_OF_MEMORY.search(message):
            raise
        sizes = _oom_sizes(message)
        arguments = sizes.get("arguments", argument_bytes_per_device(args))
        total = sizes.get("total", sizes.get("temporaries", 0) + arguments)
        compute_s = analytic_flops / target.num_devices / chip.peak_bf16_flops
        return StepReport(
            memory_per_device={"arguments": arguments, "outputs": 0, "temporaries":
                               sizes.get("temporaries", 0), "aliased": 0, "total": total, "capacity": chip.hbm_bytes},
            fits=False, flops_per_step=analytic_flops, flops_source="analytic",
            roofline_seconds=compute_s, roofline_bound="compute", hbm_traffic_bytes=0.0, compute_seconds=compute_s,
            memory_seconds=0.0, clips_per_second=0.0, compile_seconds=time.perf_counter() - started, collectives={},
            error=message.strip().splitlines()[0][:500]), None
    seconds = time.perf_counter() - started
    text = compiled.as_text()
    cost = compiled_cost(compiled)
    memory = _memory(cost, chip.hbm_bytes)
    if cost.flops > 0 and xla_counts_everything:
        flops, source = cost.flops * target.num_devices, "xla"  # XLA counts one device's program
    else:
        flops, source = analytic_flops, "analytic"
    # HBM traffic: XLA's count where it has a whole one; else every argument read and every output written once.
    whole_traffic = cost.bytes_accessed if xla_counts_everything else 0.0
    traffic = whole_traffic or float(memory["arguments"] + memory["outputs"])
    compute_s = flops / target.num_devices / chip.peak_bf16_flops
    memory_s = traffic / chip.hbm_bytes_per_second
    roofline = max(compute_s, memory_s)
    report = StepReport(
        memory_per_device=memory, fits=memory["total"] <= memory["capacity"], flops_per_step=flops,
        flops_source=source, roofline_seconds=roofline, roofline_bound="compute" if compute_s >= memory_s else "memory",
        hbm_traffic_bytes=traffic, compute_seconds=compute_s, memory_seconds=memory_s,
        clips_per_second=clips / roofline if roofline > 0 else 0.0, compile_seconds=seconds,
        collectives=collectives(text), xla_rematerialized_ops=rematerialized_ops(text))
    return report, compiled


def mesh_for_batch(axis_sizes: dict, batch_sizes: tuple[int, ...], num_devices: int) -> dict[str, int]:
    """The config's mesh sizes on `num_devices`; when the batches do not split over its data x fsdp devices and
    the config leaves `data` free (-1) with tensor=1, the devices the batch cannot use go to `tensor` (heads and
    MLP) instead: e.g. batch 64 on 128 chips trains as data=64, tensor=2."""
    sizes = dict(zip(MESH_AXES, resolve_mesh_shape(axis_sizes, num_devices)))
    batch_devices = sizes["data"] * sizes["fsdp"]
    if all(b % batch_devices == 0 for b in batch_sizes):
        return sizes
    if int(axis_sizes.get("data", 1)) != -1 or int(axis_sizes.get("tensor", 1)) != 1:
        return sizes  # the user fixed the layout: experiment_without_data names the mismatch
    data = math.gcd(*batch_sizes, num_devices // sizes["fsdp"])
    while data > 1 and (num_devices // sizes["fsdp"]) % data:
        data -= 1
    return {"data": data, "fsdp": sizes["fsdp"], "tensor": num_devices // (data * sizes["fsdp"])}


def _attention_name(model) -> str:
    """The compiled model's attention: "xla", "cudnn", "splash", or "splash>=N" when groups shorter than N tokens
    use XLA's."""
    if model.attention_impl == "splash" and model.splash_min_length > 0:
        return f"splash>={model.splash_min_length}"
    return model.attention_impl or "xla"


def compile_config(config: ml_collections.ConfigDict, target: Target, *, steps=("train", "eval"),
                   save: str | Path | None = None, num_train_examples: int | None = None,
                   log: Callable[[str], None] = lambda message: None) -> AotReport:
    """Compile `config`'s train and eval steps (those of `steps`) for `target`. `save`: also serialize the
    compiled train step there, for `timesformer train --config.aot_executable=FILE` on the target; it needs
    `num_train_examples` (the training split's size), since the learning-rate schedule is compiled into the step."""
    if save is not None and not num_train_examples:
        raise ValueError("saving the compiled train step needs the training split's size (--num_train_examples): "
                         "the learning-rate schedule, which depends on it, is compiled into the step")
    devices = target_devices(target)
    sizes = mesh_for_batch(dict(config.mesh), (config.batch_size, config.eval_batch_size), len(devices))
    if sizes != dict(zip(MESH_AXES, resolve_mesh_shape(dict(config.mesh), len(devices)))):
        log(f"batch {config.batch_size} / eval batch {config.eval_batch_size} do not split over "
            f"{len(devices)} devices: using mesh {sizes} (train with "
            + " ".join(f"--config.mesh.{axis}={size}" for axis, size in sizes.items()) + ")")
    mesh = create_mesh(sizes, devices=devices)
    optimizer_batch = config.batch_size * config.optimizer.accumulation_steps
    exp = experiment_without_data(config, mesh, num_train_examples or optimizer_batch * NOMINAL_STEPS_PER_EPOCH)
    train_step, eval_step = step_functions(exp)
    state = abstract_state(exp)
    train_batch, eval_video = abstract_batches(exp)
    forward_per_clip = forward_flops(model_fields(config))["needed"]
    planned = {
        "train": (train_step, (state, train_batch), TRAIN_FLOPS_PER_FORWARD * forward_per_clip * exp.global_batch,
                  exp.global_batch),
        "eval": (eval_step, (state.params, eval_video), forward_per_clip * exp.eval_global_batch,
                 exp.eval_global_batch),
    }
    # XLA's cost analysis counts a loop body once and a Pallas kernel as nothing: our count for such programs.
    xla_counts_everything = not exp.model.scan_blocks and exp.model.attention_impl != "splash"
    reports, executables = {}, {}
    for name in steps:
        step, args, flops, clips = planned[name]
        log(f"compiling the {name} step for {target.describe()}, mesh {dict(mesh.shape)}, {clips} clips ...")
        reports[name], executables[name] = compile_step(step, args, target, flops, clips, xla_counts_everything)
        log(f"  {reports[name].compile_seconds:.0f} s")
    if save is not None:
        compiled = executables.get("train")  # compiled above unless --steps left it out
        if compiled is None and "train" in reports:
            raise ValueError(f"the train step does not fit {target.describe()}: nothing to save")
        save_train_step(compiled or train_step.lower(state, train_batch).compile(), save, executable_meta(exp))
        log(f"compiled train step written to {save}")
    return AotReport(
        target=target.name, device_kind=devices[0].device_kind, num_devices=len(devices), mesh=dict(mesh.shape),
        global_batch=exp.global_batch, eval_batch=exp.eval_global_batch, attention_type=exp.model.attention_type,
        attention_impl=_attention_name(exp.model), remat=bool(exp.model.remat),
        remat_policy=exp.model.remat_policy, scan_blocks=bool(exp.model.scan_blocks), steps=reports)
