"""Official TimeSformer checkpoints (facebookresearch/TimeSformer `.pyth`): the state dict inside the wrapper.

The official names are the canonical names every reader produces (see `readers/__init__.py`), so this reader
only unwraps.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np


def unwrap_official_checkpoint(obj) -> dict[str, np.ndarray]:
    """The model state dict from a loaded official `.pyth` (dict with `model_state`, keys prefixed `model.`)
    or from a bare state dict; a `module.` prefix left by DistributedDataParallel is dropped too."""
    if isinstance(obj, Mapping) and "model_state" in obj:
        obj = obj["model_state"]
    elif isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise ValueError(
            "expected an official TimeSformer checkpoint: a dict with 'model_state' mapping names to tensors, "
            f"or such a state dict; got {type(obj).__name__}"
            + (f" with keys {sorted(obj)[:10]}" if isinstance(obj, Mapping) else "")
        )
    state = {}
    for key, value in obj.items():
        for prefix in ("module.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        state[key] = value
    return state
