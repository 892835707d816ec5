"""Where the splash kernel starts to save memory: one attention layer, forward and backward, compiled for a TPU
slice without one, XLA against splash, at group lengths from a temporal group to a 96-frame joint group.

    python benchmarks/splash_crossover.py --target v5p-8 --out docs/aot_results/splash_crossover_v5p-8.json

Each case holds the same number of tokens per chip (8 clips of 8 x 196 patches + cls, as a base joint train
step at batch 8 per chip), split into groups of the case's length: (G, L, 12 heads, 64) bf16 queries, keys and
values with groups over the slice's chips (`data`). Prints and writes per length: temporaries per chip for each
implementation and their ratio. `train.experiment.SPLASH_MIN_GROUP_LENGTH` is the crossover read from it.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from absl import app, flags  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_TARGET = flags.DEFINE_string("target", "v5p-8", "A TPU target (tools/aot_compile.py --target).")
_OUT = flags.DEFINE_string("out", None, "Write the results as JSON here.")
_LENGTHS = flags.DEFINE_list("lengths", ["8", "64", "197", "256", "393", "449", "512", "589", "785", "1569", "3137"],
                             "Group lengths (tokens, cls included).")

TOKENS_PER_CHIP = 8 * (8 * 196 + 1)
HEADS, HEAD_DIM = 12, 64


def _temporaries(implementation: str, length: int, mesh) -> int:
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from timesformer_jax.model.attention import fused_attention
    from timesformer_jax.parallel import sharding_context

    chips = mesh.devices.size
    groups = chips * math.ceil(TOKENS_PER_CHIP / length)
    spec = jax.ShapeDtypeStruct((groups, length, HEADS, HEAD_DIM), jnp.bfloat16,
                                sharding=NamedSharding(mesh, PartitionSpec(("data", "fsdp"))))

    def loss(q, k, v):
        return jnp.sum(fused_attention(q, k, v, implementation).astype(jnp.float32))

    with sharding_context(mesh):
        compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(spec, spec, spec).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def main(argv):
    del argv
    from timesformer_jax.aot.targets import parse_target, target_devices
    from timesformer_jax.parallel import create_mesh

    target = parse_target(_TARGET.value)
    devices = target_devices(target)
    mesh = create_mesh({"data": len(devices), "fsdp": 1, "tensor": 1}, devices=devices)
    rows = []
    for length in map(int, _LENGTHS.value):
        started = time.perf_counter()
        xla, splash = (_temporaries(impl, length, mesh) for impl in ("xla", "splash"))
        rows.append({"length": length, "xla_temp_bytes": xla, "splash_temp_bytes": splash,
                     "splash_over_xla": round(splash / xla, 3)})
        print(f"L {length:5d}: xla {xla / 2**20:9.1f} MiB  splash {splash / 2**20:9.1f} MiB  "
              f"splash/xla {splash / xla:6.3f}  ({time.perf_counter() - started:.0f} s)", flush=True)
    if _OUT.value:
        result = {"target": target.describe(), "tokens_per_chip": TOKENS_PER_CHIP, "heads": HEADS,
                  "head_dim": HEAD_DIM, "dtype": "bfloat16", "date": time.strftime("%Y-%m-%d"),
                  "command": "python benchmarks/splash_crossover.py " + " ".join(sys.argv[1:]), "rows": rows}
        Path(_OUT.value).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    app.run(main)
