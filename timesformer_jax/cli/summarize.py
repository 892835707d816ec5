"""Summarise the model of a training config: parameters, tokens attended per scheme, one timed forward pass.

    timesformer summarize --config configs/k400_base.py
    timesformer summarize --config configs/k400_large.py:axial --batch_size 4 --all_schemes
    timesformer summarize --config configs/demo.py --config.model.depth=2 --config.model.num_frames=16

Any `config.model` field can be overridden (`--config.model.attention_type=axial`).
"""
import time

import jax
import jax.numpy as jnp
from absl import flags
from ml_collections import config_flags

from timesformer_jax.cli.absl_command import run_absl
from timesformer_jax.model import ATTENTION_TYPES, TimeSformer, abstract_params, check_model_fields
from timesformer_jax.train.config import model_fields
from timesformer_jax.train.config_cli import parse_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (configs/<name>.py[:arg]); its model is summarised.")
_BATCH = flags.DEFINE_integer("batch_size", 1, "Clips in the timed forward pass.")
_ALL = flags.DEFINE_bool("all_schemes", False, "Summarise every attention scheme, not only the config's.")
flags.mark_flags_as_required(["config"])


def summarize(fields: dict, batch_size: int) -> str:
    model = TimeSformer(**fields)
    h, w = model.config_grid
    shape = model.clip_shape(batch_size)
    num_params = sum(x.size for x in jax.tree.leaves(abstract_params(model)))
    variables = model.init(jax.random.key(0), jnp.zeros(shape))
    forward = jax.jit(model.apply)
    video = jax.random.normal(jax.random.key(1), shape)
    forward(variables, video).block_until_ready()  # compile
    start = time.perf_counter()
    forward(variables, video).block_until_ready()
    seconds = time.perf_counter() - start
    stages = model.scheme.layouts(model.num_frames, h, w)
    tokens = " + ".join(str(stage.length) for stage in stages) + (f" = {sum(s.length for s in stages)}" if len(stages) > 1 else "")
    return (
        f"{model.attention_type:<20} params {num_params:>13,}  grid T={model.num_frames} H={h} W={w}  "
        f"tokens/query {tokens:<22} forward {seconds * 1e3:8.1f} ms for {shape} on {jax.devices()[0].platform}"
    )


def main(argv):
    del argv
    fields = model_fields(_CONFIG.value)
    check_model_fields(fields, source="config.model")
    fields["dtype"] = jnp.dtype(fields.get("dtype", "float32"))
    schemes = ATTENTION_TYPES if _ALL.value else (fields["attention_type"],)
    for scheme in schemes:
        print(summarize({**fields, "attention_type": scheme}, _BATCH.value), flush=True)


def run(argv: list[str] | None = None) -> None:
    """`timesformer summarize ARGS` (argv: ARGS); exits with the command's status."""
    run_absl(main, __doc__, "summarize", argv, parse_flags)
