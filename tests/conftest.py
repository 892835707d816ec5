"""Test-wide set-up: float32 reference numerics and an importable torchvision for timm.

PyPI's torchvision wheels are CUDA builds; next to the CPU `torch==2.13.0` wheel their C ops cannot load, and
torchvision then fails at import (`operator torchvision::nms does not exist`) because it registers fake kernels
for two ops without checking they exist. timm imports torchvision, and transformers imports it when present.
The reference libraries only need torchvision's Python parts, so when the import fails that way we declare the
two op schemas it expects and import it again. A working (CPU) torchvision is left untouched.
"""
import importlib.util
import sys


def _import_torchvision_without_c_ops():
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
    globals()["_TORCHVISION_SCHEMAS"] = lib  # keep the library alive for the session
    import torchvision  # noqa: F401


_import_torchvision_without_c_ops()
