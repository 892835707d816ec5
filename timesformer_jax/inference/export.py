"""A portable exported model: the inference function and its weights as serialized StableHLO (`jax.export`).

    FILE        `jax.export.Exported.serialize()`: video (B, T, H, W, 3) float32, normalised -> logits (B, C)
                float32, B symbolic (any batch size); runs with `jax` alone, without this package
    FILE.json   what a caller needs around it: the input shape, the test protocol (frames, sampling rate,
                crop, views, mean/std), class names, the source checkpoint

Reload anywhere with:

    from jax import export
    model = export.deserialize(open(FILE, "rb").read())
    logits = model.call(video)          # video: (B, T, H, W, 3) float32

Loading needs `jax` and `flatbuffers` only (`pip install jax flatbuffers`). One file serves every platform it
was exported for (`platforms`: "cpu", "cuda", "rocm", "tpu"; `model.platforms` lists them): the exporting
machine needs none of them. A model set to a platform's own attention kernel ("cudnn": cuda; "splash": tpu) is
exported with XLA's attention (the same function; `attention` in FILE.json says so) unless the kernel's platform
is the only one asked for; splash's Mosaic kernel then stays in (a stable custom call).
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import export

from timesformer_jax.atomic_write import write_atomically
from timesformer_jax.model.attention import local_platform
from timesformer_jax.protocol import protocol_of_clip


def _dtype_name(dtype) -> str | None:
    """"float32" for jnp.float32, np.dtype("float32") or "float32"; None stays None."""
    return None if dtype is None else jnp.dtype(dtype).name


PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
# attention kernels that exist on one platform only
KERNEL_PLATFORMS = {"cudnn": "cuda", "splash": "tpu"}


def default_platforms() -> tuple[str, ...]:
    """This machine's platform and cpu (just cpu on a CPU machine)."""
    return tuple(dict.fromkeys([local_platform(), "cpu"]))


def check_platforms(platforms) -> tuple[str, ...]:
    """`platforms` (names, or one comma-separated string) as a tuple of PLATFORMS names, duplicates dropped;
    ValueError naming what is not one."""
    if isinstance(platforms, str):
        platforms = [p.strip() for p in platforms.split(",") if p.strip()]
    platforms = tuple(dict.fromkeys(p.lower() for p in platforms))
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        raise ValueError(f"export platforms must be among {', '.join(PLATFORMS)}; got {', '.join(platforms) or 'none'}")
    return platforms


def portable_module(module, platforms: tuple[str, ...]):
    """(module to export, attention used): `module` with a platform's own attention kernel swapped for XLA's
    when the export is for any other platform too."""
    impl = module.attention_impl
    if impl in KERNEL_PLATFORMS and platforms != (KERNEL_PLATFORMS[impl],):
        return module.clone(attention_impl="xla", splash_min_length=0), (
            f"xla (the model's {impl} kernel runs on {KERNEL_PLATFORMS[impl]} only)")
    return module, impl or "xla"


def export_model(model, output: str | Path, protocol=None, platforms=None) -> tuple[Path, Path]:
    """Write `model` (a `PretrainedTimeSformer`) to `output` and its description to `output`.json. The batch
    dimension is symbolic; frames and size are the model's configured ones. `protocol` (a `ClipConfig`;
    default: the checkpoint's, else the official one) is recorded in the JSON under PROTOCOL_KEYS.
    `platforms`: where the file runs (default `default_platforms()`: this machine's and cpu)."""
    from timesformer_jax.inference.classify import protocol_for

    output = Path(output)
    platforms = check_platforms(platforms) if platforms is not None else default_platforms()
    protocol = protocol or protocol_for(model.module, getattr(model, "protocol", None))
    module, attention = portable_module(model.module, platforms)
    params = model.params
    forward = jax.jit(lambda video: module.apply({"params": params}, video))
    (batch,) = export.symbolic_shape("batch")
    clip = model.module.clip_shape()[1:]
    exported = export.export(forward, platforms=platforms)(jax.ShapeDtypeStruct((batch,) + clip, jnp.float32))
    write_atomically(output, exported.serialize())
    description = {
        "format": "jax.export serialized StableHLO (jax.export.deserialize(bytes).call(video)); "
                  "loading needs jax and flatbuffers",
        "jax_version": jax.__version__,
        "platforms": list(platforms),
        "attention": attention,
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

