"""What a `--target` names, and the compile-only devices of that hardware.

    v5p-256, v4-128        Cloud TPU accelerator types as gcloud spells them: the suffix counts TensorCores
                           (two per v4 / v5p chip), so v5p-256 is 128 chips on a 4x4x8 slice
    v5litepod-256, v6e-256 one TensorCore per chip: the suffix counts chips (v5e-N is accepted for v5litepod-N)
    v5p:4x4x8, v5e:2x2     a raw TPU topology (generation:shape)
    h100, h100x8, h200x8   NVIDIA GPUs: `xN` GPUs per host (default 1), times `num_hosts` hosts

The chip counts and shapes are Google's published type -> topology tables (`TPU_TYPES`). TPU devices come from
`libtpu` (extra `tpu`), GPU devices from the CUDA plugin (extra `gpu-compile`) with the XLA target config in
`gpu_targets/`; neither needs the hardware.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from importlib import resources

from timesformer_jax.aot.chips import CHIPS, ChipSpec

# Published single-slice shapes (https://cloud.google.com/tpu/docs/v4, v5p, v5e, v6e: "Configurations").
_CUBE_SHAPES = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
                512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16", 6144: "16x16x24"}
_TORUS_2D_SHAPES = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}


@dataclasses.dataclass(frozen=True)
class TpuType:
    generation: str  # libtpu's topology prefix and our CHIPS key
    cores_per_chip: int
    shapes: dict[int, str]  # chips -> topology


TPU_TYPES = {
    "v4": TpuType("v4", 2, {k: v for k, v in _CUBE_SHAPES.items() if k <= 4096}),
    "v5p": TpuType("v5p", 2, _CUBE_SHAPES),
    "v5litepod": TpuType("v5e", 1, _TORUS_2D_SHAPES),
    "v5e": TpuType("v5e", 1, _TORUS_2D_SHAPES),
    "v6e": TpuType("v6e", 1, _TORUS_2D_SHAPES),
}
GPU_TARGET_CONFIGS = {"h100": "h100_sxm.txtpb", "h200": "h200.txtpb"}
_HOST_CHIPS = (2, 2, 1)  # libtpu's default chips per host, every generation here


@dataclasses.dataclass(frozen=True)
class Target:
    name: str  # as given
    platform: str  # "tpu" | "cuda"
    topology: str  # TPU: "v5p:4x4x8"; GPU: "slices x hosts x GPUs per host", e.g. "1x1x8"
    num_devices: int
    chip: ChipSpec

    def describe(self) -> str:
        return f"{self.name} ({self.num_devices} x {self.chip.name}, topology {self.topology})"


def _tpu_target(name: str, generation: str, shape: str) -> Target:
    dims = tuple(int(d) for d in shape.split("x"))
    return Target(name, "tpu", f"{generation}:{shape}", math.prod(dims), CHIPS[generation])


def parse_target(text: str, num_hosts: int = 1) -> Target:
    """The Target `text` names (see the module docstring); ValueError naming the accepted forms otherwise."""
    name = text.strip().lower()
    if match := re.fullmatch(r"(v4|v5p|v5e|v6e):(\d+(?:x\d+){1,2})", name):
        if num_hosts != 1:
            raise ValueError("--num_hosts is for GPU targets; a TPU topology fixes its hosts")
        return _tpu_target(text, match.group(1), match.group(2))
    if match := re.fullmatch(r"(v4|v5p|v5litepod|v5e|v6e)-(\d+)", name):
        if num_hosts != 1:
            raise ValueError("--num_hosts is for GPU targets; a TPU accelerator type fixes its hosts")
        kind, count = TPU_TYPES[match.group(1)], int(match.group(2))
        chips, rest = divmod(count, kind.cores_per_chip)
        if rest or chips not in kind.shapes:
            sizes = ", ".join(f"{match.group(1)}-{c * kind.cores_per_chip}" for c in kind.shapes)
            raise ValueError(f"{text!r} is not a published {match.group(1)} accelerator type; they are {sizes}")
        return _tpu_target(text, kind.generation, kind.shapes[chips])
    if match := re.fullmatch(r"(h100|h200)(?:x(\d+))?", name):
        per_host = int(match.group(2) or 1)
        if per_host < 1 or per_host > 8 or num_hosts < 1:
            raise ValueError(f"{text!r}: 1 to 8 GPUs per host and at least one host, got {per_host} x {num_hosts}")
        return Target(text, "cuda", f"1x{num_hosts}x{per_host}", per_host * num_hosts, CHIPS[match.group(1)])
    raise ValueError(
        f"unknown target {text!r}: expected a Cloud TPU accelerator type (v4-128, v5p-256, v5litepod-256, v6e-256), "
        f"a TPU topology (v5p:4x4x8, v5e:2x2) or a GPU target ({', '.join(GPU_TARGET_CONFIGS)}, with xN GPUs per "
        "host, e.g. h100x8, and --num_hosts)")


def gpu_target_config(chip: str) -> str:
    """The GpuTargetConfigProto text of `chip` shipped in `gpu_targets/` (origin: its README.md)."""
    return (resources.files("timesformer_jax.aot") / "gpu_targets" / GPU_TARGET_CONFIGS[chip]).read_text()


# Compiling for a GPU without it skips autotuning, and XLA's default Triton GEMM tiling then fails on the
# attention output projection ("Couldn't find output tile sizes", a dot whose operand folds the length-197 token
# axis; any way of writing `proj` fails alike, lengths 8 or 256 compile). Routing GEMMs to cuBLAS -- what the
# autotuner falls back to on a real GPU -- compiles it. See docs/scaling.md.
UNTUNED_GPU_XLA_FLAGS = "--xla_gpu_enable_triton_gemm=false"


def _untuned_gemm_flags() -> None:
    """Add UNTUNED_GPU_XLA_FLAGS to XLA_FLAGS unless the user set that flag (read when the first XLA client
    starts, so this only acts before then, as in `timesformer compile`)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_gpu_enable_triton_gemm" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {UNTUNED_GPU_XLA_FLAGS}".strip()


def target_devices(target: Target) -> list:
    """Compile-only devices of `target`, in the order `jax.make_mesh` lays out on the physical topology."""
    from jax.experimental import topologies

    # Compile-only devices touch no hardware, so several processes (parallel tests, two tool runs) may load
    # libtpu at once; without this the second one fails on libtpu's lockfile.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    try:
        if target.platform == "tpu":
            generation, shape = target.topology.split(":")
            dims = [int(d) for d in shape.split("x")] + [1] * (3 - shape.count("x") - 1)
            host = [min(d, h) for d, h in zip(dims, _HOST_CHIPS)]
            # megacore: one JAX device per v4 / v5p chip (its two TensorCores together), as on a real slice
            chip_config = "megacore" if generation in ("v4", "v5p") else "default"
            description = topologies.get_topology_desc(platform="tpu", topology_name=target.topology,
                                                       chip_config_name=chip_config, chips_per_host_bounds=host)
        else:
            _untuned_gemm_flags()
            description = topologies.get_topology_desc(platform="cuda", topology=target.topology,
                                                       target_config=gpu_target_config(target.chip.name))
    except (RuntimeError, ValueError, NotImplementedError) as e:
        extra = "tpu" if target.platform == "tpu" else "gpu-compile"
        raise RuntimeError(f"cannot create compile-only devices for {target.describe()}: {e}. Is the "
                           f"'{extra}' extra installed (pip install -e '.[{extra}]')?") from None
    devices = list(description.devices)
    if len(devices) != target.num_devices:
        raise RuntimeError(f"{target.describe()}: the compiler gave {len(devices)} devices")
    return devices
