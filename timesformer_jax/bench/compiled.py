"""XLA's own view of a model: compiled FLOPs (`cost_analysis`) and peak memory (`memory_analysis`).

Everything here lowers the real forward / train step with abstract arguments (`jax.ShapeDtypeStruct`) and
compiles it, so a configuration far too large for the device (joint attention on 96 frames) is analysed
without allocating anything: that is how the benchmark predicts out-of-memory cases instead of crashing.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding

from timesformer_jax.model import TimeSformer
from timesformer_jax.parallel import batch_sharding, with_shardings
from timesformer_jax.train.optimizer import OptimizerConfig, create_optimizer
from timesformer_jax.train.state import StepConfig, make_eval_step, make_train_step, state_shardings

# The paper's recipe (SGD with momentum and weight decay): what a train step costs in the benchmark, on our
# side and on the PyTorch reference's.
BENCH_OPTIMIZER = OptimizerConfig(name="sgd", base_learning_rate=0.005, reference_batch_size=64)


@dataclasses.dataclass(frozen=True)
class CompiledCost:
    """FLOPs and memory of one compiled function, in FLOPs and bytes, as XLA reports them: per device for an SPMD
    program (`aot/` scales the FLOPs to all devices). `flops` and `bytes_accessed` are 0 where the backend gives
    no cost analysis (GPU)."""

    flops: float
    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    alias_bytes: int
    code_bytes: int = 0  # the generated program, which lives in device memory too
    bytes_accessed: float = 0.0  # XLA's estimate of memory traffic: every top-level op's operands and results

    @property
    def peak_bytes(self) -> int:
        """Arguments + outputs + temporaries, less outputs that reuse donated argument buffers."""
        return self.argument_bytes + self.output_bytes + self.temp_bytes - self.alias_bytes


def compiled_cost(compiled: jax.stages.Compiled) -> CompiledCost:
    """The cost and memory analysis of a compiled function."""
    costs = compiled.cost_analysis()
    if isinstance(costs, (list, tuple)):  # older jaxlibs return one dict per computation
        costs = costs[0] if costs else None
    costs = costs or {}  # XLA:GPU gives none
    memory = compiled.memory_analysis()
    return CompiledCost(
        flops=float(costs.get("flops", 0.0)),
        argument_bytes=int(memory.argument_size_in_bytes),
        output_bytes=int(memory.output_size_in_bytes),
        temp_bytes=int(memory.temp_size_in_bytes),
        alias_bytes=int(memory.alias_size_in_bytes),
        code_bytes=int(memory.generated_code_size_in_bytes),
        bytes_accessed=float(costs.get("bytes accessed", 0.0)),
    )


def analyse(lowered: jax.stages.Lowered) -> CompiledCost:
    """Compile `lowered` and read its cost and memory analysis."""
    return compiled_cost(lowered.compile())


@dataclasses.dataclass(frozen=True)
class CompiledSteps:
    """The jitted forward and train step of one model on one mesh, with abstract (sharded) arguments."""

    forward: Any
    train_step: Any
    optimizer: Any
    abstract_state: Any
    abstract_batch: dict
    state_shardings: Any
    video_shape: tuple[int, ...]

    def forward_cost(self) -> CompiledCost:
        return analyse(self.forward.lower(self.abstract_state.params, self.abstract_batch["video"]))

    def train_cost(self) -> CompiledCost:
        return analyse(self.train_step.lower(self.abstract_state, self.abstract_batch))


def compiled_steps(model: TimeSformer, batch_size: int, mesh: Mesh) -> CompiledSteps:
    """Our real eval and train steps (`train/state.py`) for `model` at `batch_size` clips, not yet compiled."""
    shape = model.clip_shape(batch_size)
    optimizer, schedule = create_optimizer(BENCH_OPTIMIZER, batch_size, steps_per_epoch=1000)
    shardings, abstract = state_shardings(model, optimizer, mesh, shape)
    data: NamedSharding = batch_sharding(mesh)
    batch = {
        "video": jax.ShapeDtypeStruct(shape, jnp.float32, sharding=data),
        "label": jax.ShapeDtypeStruct(shape[:1], jnp.int32, sharding=data),
    }
    return CompiledSteps(
        forward=make_eval_step(model, mesh, shardings),
        train_step=make_train_step(model, optimizer, schedule, mesh, shardings, StepConfig()),
        optimizer=optimizer,
        abstract_state=with_shardings(abstract, shardings),
        abstract_batch=batch,
        state_shardings=shardings,
        video_shape=shape,
    )
