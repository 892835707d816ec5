"""The float32 matrix products of a train step, alone: XLA:CPU (what our step compiles to) against PyTorch.

    python benchmarks/cpu_gemm.py [--tokens 2048] [--width 192] [--repeats 50]

The `small` speed case (tools/benchmark.py) multiplies (tokens, width) activations by (width, out) weights,
tokens = batch 4 x 8 frames x 64 patches = 2048 and out in {width, 3 width, 4 width}. A train step runs each
product in three forms: the forward X @ W, the input gradient dY @ W^T and the weight gradient X^T @ dY. This
times each form as one jitted `dot_general` and as the same torch expression, on the same threads (every core
this process may use), and prints a Markdown table of median times and GFLOP/s. If our products are slower
than the reference's, no rewrite of the model's element-wise work can make our train step much faster than
the reference's (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse

import numpy as np

FORMS = {
    # name: (dot_general dimension numbers, operand shapes from (tokens, width, out), the torch expression)
    "forward X @ W": ((((1,), (0,)), ((), ())), lambda t, k, n: ((t, k), (k, n)), lambda a, b: a @ b),
    "input grad dY @ W^T": ((((1,), (1,)), ((), ())), lambda t, k, n: ((t, n), (k, n)), lambda a, b: a @ b.T),
    "weight grad X^T @ dY": ((((0,), (0,)), ((), ())), lambda t, k, n: ((t, k), (t, n)), lambda a, b: a.T @ b),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import jax
    import torch

    from timesformer_jax.bench.runner import cpu_threads
    from timesformer_jax.bench.timing import time_calls

    threads = cpu_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"{jax.devices()[0].device_kind}, {threads} thread(s); jax {jax.__version__}, torch {torch.__version__}")
    print("| product | shapes | ours ms | PyTorch ms | ours GFLOP/s | PyTorch GFLOP/s | ours / PyTorch speed |")
    print("|---|---|---|---|---|---|---|")
    for multiple in (1, 3, 4):
        t, k, n = args.tokens, args.width, multiple * args.width
        flops = 2 * t * k * n
        for name, (dims, shapes, torch_product) in FORMS.items():
            shape_a, shape_b = shapes(t, k, n)
            a, b = rng.standard_normal(shape_a, dtype=np.float32), rng.standard_normal(shape_b, dtype=np.float32)
            ours = jax.jit(lambda x, y, dims=dims: jax.lax.dot_general(x, y, dims))
            ja, jb = jax.device_put(a), jax.device_put(b)
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            ours_ms = 1e3 * time_calls(lambda: ours(ja, jb), jax.block_until_ready, repeats=args.repeats).median_s
            theirs_ms = 1e3 * time_calls(lambda: torch_product(ta, tb), lambda x: x, repeats=args.repeats).median_s
            print(f"| {name} | {shape_a} x {shape_b} | {ours_ms:.2f} | {theirs_ms:.2f} | "
                  f"{flops / ours_ms / 1e6:.0f} | {flops / theirs_ms / 1e6:.0f} | {theirs_ms / ours_ms:.2f}x |")


if __name__ == "__main__":
    main()
