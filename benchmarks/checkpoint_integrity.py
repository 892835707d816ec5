"""What the checkpoint manifest costs: save and restore of the base model's train state with and without it.

    python benchmarks/checkpoint_integrity.py --workdir /tmp/ckpt_bench

Builds TimeSformer-base's TrainState (parameters + SGD momentum, float32) on this machine, saves it with
`Checkpointer` (async, as training does; the manifest is written in orbax's finalization) and times: the save
until committed, the manifest alone (`write_manifest` over the step's files), verification alone
(`verify_manifest`), and `Checkpointer.restore` (verification + restore + the finiteness check) against orbax's
plain restore.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/ckpt_bench", "Scratch directory.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repetitions (median reported).")


def _median(values):
    return sorted(values)[len(values) // 2]


def main(argv):
    del argv
    import jax
    import orbax.checkpoint as ocp

    from timesformer_jax.integrity import verify_manifest, write_manifest
    from timesformer_jax.model import create_model
    from timesformer_jax.parallel import create_mesh, with_shardings
    from timesformer_jax.train.checkpointing import ITEMS, Checkpointer
    from timesformer_jax.train.optimizer import OptimizerConfig, create_optimizer
    from timesformer_jax.train.state import create_train_state, state_shardings

    model = create_model("timesformer_base")
    optimizer, _ = create_optimizer(OptimizerConfig(name="sgd", args={"momentum": 0.9}), 64, 1000)
    mesh = create_mesh({"data": -1})
    shape = (1, 8, 224, 224, 3)
    state = create_train_state(model, optimizer, mesh, shape)
    shardings, abstract = state_shardings(model, optimizer, mesh, shape)
    nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    work = Path(_WORKDIR.value)
    times = {"save": [], "manifest": [], "verify": [], "restore (ours)": [], "restore (orbax alone)": []}
    for repeat in range(_REPEATS.value):
        shutil.rmtree(work, ignore_errors=True)
        checkpointer = Checkpointer(work / "checkpoints")
        started = time.perf_counter()
        checkpointer.save(1, state, {"repeat": repeat}, force=True)
        checkpointer.wait()
        times["save"].append(time.perf_counter() - started)
        step_dir = work / "checkpoints" / "1"
        started = time.perf_counter()
        write_manifest(step_dir, ITEMS)
        times["manifest"].append(time.perf_counter() - started)
        started = time.perf_counter()
        assert verify_manifest(step_dir) is None
        times["verify"].append(time.perf_counter() - started)
        started = time.perf_counter()
        restored, _ = checkpointer.restore(abstract, shardings, step=1)
        jax.block_until_ready(restored)
        times["restore (ours)"].append(time.perf_counter() - started)
        target = with_shardings(abstract, shardings)
        started = time.perf_counter()
        plain = checkpointer.manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        jax.block_until_ready(plain.state)
        times["restore (orbax alone)"].append(time.perf_counter() - started)
        checkpointer.close()
    print(f"TimeSformer-base train state (params + SGD momentum, float32): {nbytes / 1e6:.0f} MB; "
          f"median of {_REPEATS.value}")
    for name, values in times.items():
        print(f"  {name}: {_median(values):.2f} s")


if __name__ == "__main__":
    app.run(main)
