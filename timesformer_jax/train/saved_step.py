"""A train step compiled ahead of time (`timesformer compile --save`), written to a file and loaded by the run
it was compiled for (`config.aot_executable`), with what it was compiled for checked on load."""
from __future__ import annotations

import pickle
from pathlib import Path

import jax

from timesformer_jax.atomic_write import write_atomically


def executable_meta(exp) -> dict:
    """What a saved train step was compiled for, checked against the run that loads it."""
    return {"devices": int(exp.mesh.devices.size), "device_kind": exp.mesh.devices.flat[0].device_kind,
            "mesh": dict(exp.mesh.shape), "global_batch": exp.global_batch, "steps_per_epoch": exp.steps_per_epoch,
            "total_steps": exp.total_steps, "model": exp.config.model.to_dict(), "jax": jax.__version__}


def save_train_step(compiled: jax.stages.Compiled, path: str | Path, meta: dict) -> None:
    """Serialize a compiled step (`jax.experimental.serialize_executable`) with its argument / result trees and
    `meta` (`executable_meta`), written whole or not at all."""
    from jax.experimental.serialize_executable import serialize

    payload, in_tree, out_tree = serialize(compiled)
    write_atomically(path, pickle.dumps({"executable": payload, "in_tree": in_tree, "out_tree": out_tree,
                                         "meta": meta}))


def load_train_step(path: str | Path, expected_meta: dict | None = None) -> jax.stages.Compiled:
    """The compiled step `save_train_step` wrote, loaded onto this process's devices. With `expected_meta`
    (`executable_meta` of the run), a step compiled for anything else (devices, mesh, batch, schedule length,
    model, jax version) is a ValueError naming the difference. Only load files you made: unpickling runs code."""
    from jax.experimental.serialize_executable import deserialize_and_load

    saved = pickle.loads(Path(path).read_bytes())
    if expected_meta is not None:
        differences = [f"{key}: compiled for {saved['meta'].get(key)!r}, this run has {value!r}"
                       for key, value in expected_meta.items() if saved["meta"].get(key) != value]
        if differences:
            raise ValueError(f"the compiled train step {path} does not match this run (" + "; ".join(differences)
                             + "): recompile it with `timesformer compile --save`")
    return deserialize_and_load(saved["executable"], saved["in_tree"], saved["out_tree"])
