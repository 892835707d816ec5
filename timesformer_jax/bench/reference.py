"""The PyTorch reference for speed comparisons: Hugging Face `TimesformerForVideoClassification`, same config.

torch and transformers come with the `test` extra (`pip install -e ".[test]"`, which `make install` does);
without them the benchmark reports our side only. The reference runs eagerly in float32 on CPU with
`torch.set_num_threads(threads)` -- by default as many threads as JAX's CPU client uses, i.e. every core.

HF implements the schemes marked `official` in `model/schemes.py` (`REFERENCE_SCHEMES`: divided, joint and
space-only attention); the paper's sparse local-global and axial schemes have no PyTorch reference.
"""
from __future__ import annotations

import importlib.util
import sys
from typing import Callable

import numpy as np

from timesformer_jax.model import REFERENCE_SCHEMES


def import_torchvision_without_c_ops() -> None:
    """Make `import torchvision` work next to the CPU torch wheel (transformers and timm import it if present).

    PyPI's torchvision wheels are CUDA builds; next to the CPU `torch==2.13.0` wheel their C ops cannot load, and
    torchvision then fails at import (`operator torchvision::nms does not exist`) because it registers fake
    kernels for two ops without checking they exist. The reference libraries only need torchvision's Python
    parts, so when the import fails that way we declare the two op schemas it expects and import it again. A
    working torchvision is left untouched.
    """
    if importlib.util.find_spec("torchvision") is None:
        return
    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    globals()["_TORCHVISION_SCHEMAS"] = lib  # keep the library alive for the process
    import torchvision  # noqa: F401


def reference_available() -> str | None:
    """None when the reference can run, else the reason it cannot."""
    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install -e '.[test]')"
    return None


def hf_config(fields: dict):
    """The HF `TimesformerConfig` of a model with our TimeSformer `fields` (a preset dict plus overrides)."""
    import_torchvision_without_c_ops()
    from transformers import TimesformerConfig

    return TimesformerConfig(
        image_size=fields["image_size"],
        patch_size=fields["patch_size"],
        num_channels=fields.get("in_channels", 3),
        num_frames=fields["num_frames"],
        hidden_size=fields["hidden_size"],
        num_hidden_layers=fields["depth"],
        num_attention_heads=fields["num_heads"],
        intermediate_size=fields["mlp_dim"],
        num_labels=fields["num_classes"],
        attention_type=fields.get("attention_type", "divided_space_time"),
        hidden_act="gelu",
        layer_norm_eps=fields.get("layer_norm_eps", 1e-6),
        qkv_bias=fields.get("qkv_bias", True),
    )


def hf_model(fields: dict):
    """A randomly initialised HF TimeSformer with our model `fields`, in eval mode."""
    import_torchvision_without_c_ops()  # before transformers imports its model code, which imports torchvision
    from transformers import TimesformerForVideoClassification

    if fields["attention_type"] not in REFERENCE_SCHEMES:
        raise ValueError(f"no PyTorch reference for {fields['attention_type']!r}; it has {REFERENCE_SCHEMES}")
    return TimesformerForVideoClassification(hf_config(fields)).eval()


def reference_calls(fields: dict, batch_size: int, threads: int, seed: int = 0, device: str = "cpu",
                    dtype: str = "float32") -> tuple[Callable, Callable]:
    """(forward, train_step) closures over an HF model and a random batch, ready for `time_calls` (on "cuda",
    synchronise with `torch.cuda.synchronize`); the model and input in `dtype` ("float32" or "bfloat16") on
    `device`, run eagerly.

    The train step is what ours does: forward in train mode, cross-entropy, backward, SGD with momentum 0.9 and
    weight decay 1e-4 (the paper's recipe).
    """
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch_dtype = getattr(torch, dtype)
    model = hf_model(fields).to(device=device, dtype=torch_dtype)
    rng = np.random.default_rng(seed)
    size = fields["image_size"]
    pixels = torch.from_numpy(
        rng.standard_normal((batch_size, fields["num_frames"], 3, size, size), dtype=np.float32)
    ).to(device=device, dtype=torch_dtype)
    labels = torch.from_numpy(rng.integers(0, fields["num_classes"], batch_size)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)

    def logits():
        out = model(pixel_values=pixels).logits
        if fields["attention_type"] == "space_only":
            # HF classifies every frame of a space-only clip; the official model averages over frames.
            out = out.reshape(batch_size, -1, out.shape[-1]).mean(dim=1)
        return out

    def forward():
        model.eval()
        with torch.inference_mode():
            return logits()

    def train_step():
        model.train()
        loss = torch.nn.functional.cross_entropy(logits(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return forward, train_step
