"""Run benchmark cases: compile-time analysis for every case, timing where asked, the PyTorch reference beside.

`analyse_case` never allocates the model (abstract arguments), so the whole Figure 3 grid is analysed even
where it cannot run. `time_case` allocates and runs our forward and train step, and the reference's when it
exists for the scheme; cases whose compiled peak memory exceeds the device's are reported as predicted OOM
instead of being run.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import numpy as np

from timesformer_jax.bench.cases import BenchCase
from timesformer_jax.bench.compiled import CompiledCost, compiled_steps
from timesformer_jax.model.flops import forward_flops
from timesformer_jax.bench.reference import reference_available, reference_calls
from timesformer_jax.bench.timing import Timing, time_calls
from timesformer_jax.model import REFERENCE_SCHEMES, TimeSformer
from timesformer_jax.train.state import create_train_state


@dataclasses.dataclass
class CaseAnalysis:
    case: BenchCase
    params: int
    analytic_flops: float  # forward, whole batch, the paper's convention (every token through every block)
    needed_flops: float  # forward, less the work whose output nothing reads (what XLA compiles)
    forward: CompiledCost
    train: CompiledCost
    train_remat: CompiledCost | None

    @property
    def flops_ratio(self) -> float:
        """XLA's forward FLOPs over the analytic count of the work that is needed."""
        return self.forward.flops / self.needed_flops


@dataclasses.dataclass
class CaseTiming:
    case: BenchCase
    forward: Timing | None = None
    train: Timing | None = None
    reference_forward: Timing | None = None
    reference_train: Timing | None = None
    note: str = ""  # why something was not timed

    @property
    def forward_speedup(self) -> float | None:
        """Reference time over ours (> 1: we are faster)."""
        if self.forward and self.reference_forward:
            return self.reference_forward.median_s / self.forward.median_s
        return None

    @property
    def train_speedup(self) -> float | None:
        if self.train and self.reference_train:
            return self.reference_train.median_s / self.train.median_s
        return None


def device_memory_bytes(device: jax.Device | None = None) -> int:
    """Memory available to one device: the accelerator's limit, or the host's physical memory on CPU."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cpu_threads() -> int:
    """Cores this process may run on (what XLA's CPU client uses, and what the reference gets)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def analyse_case(case: BenchCase, mesh, with_remat: bool = True) -> CaseAnalysis:
    """Parameters, analytic FLOPs and the compiled forward / train-step costs (and train step with remat)."""
    model = TimeSformer(**case.fields)
    steps = compiled_steps(model, case.batch_size, mesh)
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(steps.abstract_state.params))
    remat = None
    if with_remat:
        remat = compiled_steps(TimeSformer(**case.fields, remat=True), case.batch_size, mesh).train_cost()
    analytic = forward_flops(case.fields, case.batch_size)
    return CaseAnalysis(
        case=case,
        params=params,
        analytic_flops=analytic["total"],
        needed_flops=analytic["needed"],
        forward=steps.forward_cost(),
        train=steps.train_cost(),
        train_remat=remat,
    )


def time_case(case: BenchCase, mesh, analysis: CaseAnalysis | None = None, repeats: int = 5,
              budget_s: float = 60.0, reference: bool = True, log: Callable[[str], None] = print) -> CaseTiming:
    """Median wall time of our forward and train step (and the reference's), after one warm-up call each."""
    timing = CaseTiming(case)
    limit = device_memory_bytes()
    if analysis is not None and analysis.train.peak_bytes > limit:
        timing.note = f"OOM predicted: train step needs {analysis.train.peak_bytes / 2**30:.1f} GiB > {limit / 2**30:.1f}"
        return timing
    model = TimeSformer(**case.fields)
    steps = compiled_steps(model, case.batch_size, mesh)
    train_state = create_train_state(model, steps.optimizer, mesh, steps.video_shape,
                                         shardings=steps.state_shardings)
    rng = np.random.default_rng(0)
    video = jax.device_put(rng.standard_normal(steps.video_shape, dtype=np.float32),
                           steps.abstract_batch["video"].sharding)
    labels = jax.device_put(rng.integers(0, case.fields["num_classes"], case.batch_size).astype(np.int32),
                            steps.abstract_batch["label"].sharding)
    batch = {"video": video, "label": labels}
    state = [train_state]  # the train step donates its input state: keep the latest one here

    def train_call():
        state[0], metrics = steps.train_step(state[0], batch)
        return metrics["loss"]

    log(f"  timing {case.name} {case.attention_type} batch {case.batch_size}: ours")
    timing.forward = time_calls(lambda: steps.forward(state[0].params, video), jax.block_until_ready,
                                repeats=repeats, budget_s=budget_s)
    timing.train = time_calls(train_call, jax.block_until_ready, repeats=repeats, budget_s=budget_s)
    del state[0]
    if not reference:
        return timing
    missing = reference_available()
    if case.attention_type not in REFERENCE_SCHEMES:
        timing.note = "no PyTorch reference for this scheme"
    elif missing:
        timing.note = f"reference not run: {missing}"
    elif jax.devices()[0].platform != "cpu":
        timing.note = "reference timed on CPU only"
    else:
        log(f"  timing {case.name} {case.attention_type} batch {case.batch_size}: PyTorch reference")
        forward, train_step = reference_calls(case.fields, case.batch_size, threads=cpu_threads())
        timing.reference_forward = time_calls(forward, lambda x: x, repeats=repeats, budget_s=budget_s)
        timing.reference_train = time_calls(train_step, lambda x: x, repeats=repeats, budget_s=budget_s)
    return timing

