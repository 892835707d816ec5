"""Host batches -> global arrays sharded over the mesh's batch axes (one host or many)."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh

from timesformer_jax.parallel.rules import batch_sharding


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
    """Each host passes its own slice (B / process_count examples); the result is one global array per key with
    the batch dimension over `data` x `fsdp`. With one process this is a plain sharded `device_put`."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}
