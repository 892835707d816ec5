"""A portable exported model: the inference function and its weights as serialized StableHLO (`jax.export`).

    FILE        `jax.export.Exported.serialize()`: video (B, T, H, W, 3) float32, normalised -> logits (B, C)
                float32, B symbolic (any batch size); runs with `jax` alone, without this package
    FILE.json   what a caller needs around it: the input shape, the test protocol (frames, sampling rate,
                crop, views, mean/std), class names, the source checkpoint

Reload anywhere with:

    from jax import export
    model = export.deserialize(open(FILE, "rb").read())
    logits = model.call(video)          # video: (B, T, H, W, 3) float32
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import export

from timesformer_jax.atomic_write import write_atomically
from timesformer_jax.protocol import protocol_of_clip


def _dtype_name(dtype) -> str | None:
    """"float32" for jnp.float32, np.dtype("float32") or "float32"; None stays None."""
    return None if dtype is None else jnp.dtype(dtype).name


def export_model(model, output: str | Path, protocol=None) -> tuple[Path, Path]:
    """Write `model` (a `PretrainedTimeSformer`) to `output` and its description to `output`.json. The batch
    dimension is symbolic; frames and size are the model's configured ones. `protocol` (a `ClipConfig`;
    default: the checkpoint's, else the official one) is recorded in the JSON under PROTOCOL_KEYS."""
    from timesformer_jax.inference.classify import protocol_for

    output = Path(output)
    protocol = protocol or protocol_for(model.module, getattr(model, "protocol", None))
    params = model.params
    forward = jax.jit(lambda video: model.module.apply({"params": params}, video))
    (batch,) = export.symbolic_shape("batch")
    clip = model.module.clip_shape()[1:]
    exported = export.export(forward)(jax.ShapeDtypeStruct((batch,) + clip, jnp.float32))
    write_atomically(output, exported.serialize())
    description = {
        "format": "jax.export serialized StableHLO (jax.export.deserialize(bytes).call(video))",
        "jax_version": jax.__version__,
        "input": {"shape": ["batch", *clip], "dtype": "float32", "layout": "(B, T, H, W, C), channels last",
                  "normalisation": "(pixels / 255 - mean) / std"},
        "output": {"shape": ["batch", model.module.num_classes], "dtype": "float32", "meaning": "logits"},
        "protocol": protocol_of_clip(protocol),
        "class_names": list(model.class_names) if model.class_names else None,
        "model": {k: (_dtype_name(v) if k in ("dtype", "param_dtype") else v) for k, v in model.config.items()},
        "source": model.source,
    }
    sidecar = output.with_name(output.name + ".json")
    sidecar.write_text(json.dumps(description, indent=1, default=str) + "\n")
    return output, sidecar


def export_onnx(model, output: str | Path) -> Path:
    """Write `model` as an ONNX graph (jax2onnx), batch size symbolic, weights inside; runs in onnxruntime.

    jax2onnx is optional: `pip install onnx onnx-ir onnxruntime` and then
    `pip install --no-deps jax2onnx dm-pix equinox jaxtyping wadler-lindig chex` (its metadata pins an older
    orbax-checkpoint than ours; with --no-deps it runs beside ours, as `make install` sets it up)."""
    try:
        from jax2onnx import to_onnx
    except ImportError as e:
        raise ImportError("ONNX export needs jax2onnx: pip install onnx onnx-ir onnxruntime && pip install "
                          "--no-deps jax2onnx dm-pix equinox jaxtyping wadler-lindig chex") from e
    output = Path(output)
    params = model.params
    graph = to_onnx(lambda video: model.module.apply({"params": params}, video),
                    [("batch",) + tuple(model.module.clip_shape()[1:])])
    write_atomically(output, graph.SerializeToString())
    return output

