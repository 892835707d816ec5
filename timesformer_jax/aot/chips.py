"""Published figures of the accelerator chips we compile for: the one table every roofline estimate reads.

Peak dense bf16 matrix throughput, HBM capacity and HBM bandwidth per chip (per GPU), each from the vendor's own
page. TPU capacities are GiB as Google states them; GPU capacities are the device memory in the XLA target config
we compile with (`gpu_targets/`), which is what the compiler plans against.
"""
from __future__ import annotations

import dataclasses

GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class ChipSpec:
    name: str
    peak_bf16_flops: float  # FLOP/s, dense (no sparsity)
    hbm_bytes: int
    hbm_bytes_per_second: float
    source: str


CHIPS: dict[str, ChipSpec] = {spec.name: spec for spec in (
    ChipSpec("v4", 275e12, 32 * GIB, 1200e9, "https://cloud.google.com/tpu/docs/v4 (275 TFLOPS, 32 GiB, 1200 GBps)"),
    ChipSpec("v5e", 197e12, 16 * GIB, 819e9, "https://cloud.google.com/tpu/docs/v5e (197 TFLOPS, 16 GB, 819 GBps)"),
    ChipSpec("v5p", 459e12, 95 * GIB, 2765e9, "https://cloud.google.com/tpu/docs/v5p (459 TFLOPS, 95 GiB, 2765 GBps)"),
    ChipSpec("v6e", 918e12, 32 * GIB, 1638e9, "https://cloud.google.com/tpu/docs/v6e (918 TFLOPS, 32 GB, 1638 GBps)"),
    ChipSpec("h100", 989.4e12, 84_942_979_072, 3.35e12,
             "NVIDIA H100 SXM datasheet (bf16 1979 TFLOPS with sparsity, so 989.4 dense; 80 GB HBM3, 3.35 TB/s); "
             "capacity: device_memory_size of gpu_targets/h100_sxm.txtpb"),
    ChipSpec("h200", 989.4e12, 151_397_597_184, 4.8e12,
             "NVIDIA H200 datasheet (bf16 1979 TFLOPS with sparsity, so 989.4 dense; 141 GB HBM3e, 4.8 TB/s); "
             "capacity: device_memory_size of gpu_targets/h200.txtpb"),
)}
