"""Joining a multi-process run (a multi-host TPU pod, several GPU hosts, or processes on one machine).

On TPU VMs and SLURM/Open MPI clusters `jax.distributed.initialize()` finds the coordinator by itself; elsewhere
pass the coordinator address, the process count and this process's id (also read from JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID).
"""
from __future__ import annotations

import os

import jax


def initialize_distributed(mode: str = "auto", coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None,
                           timeout_s: int = 300) -> bool:
    """Call `jax.distributed.initialize` when asked to (`mode="on"`), or in `"auto"` mode when a coordinator
    address is given (argument or JAX_COORDINATOR_ADDRESS). Returns whether this is a distributed run.
    Must run before anything touches the JAX backend."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"distributed mode must be auto, on or off; got {mode!r}")
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if mode == "off" or (mode == "auto" and not coordinator_address):
        return False
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=timeout_s)
    return True


def define_distributed_flags():
    """absl flags for the tools that join multi-process runs; pass the result to `initialize_from_flags`."""
    from absl import flags

    return (
        flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                          "Call jax.distributed.initialize: on (TPU VMs, SLURM: it finds the coordinator), off, or "
                          "auto = when a coordinator address is given."),
        flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process runs)."),
        flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs)."),
        flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs)."),
    )


def initialize_from_flags(defined) -> bool:
    return initialize_distributed(*(flag.value for flag in defined))
