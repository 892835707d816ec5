"""Test-wide set-up: an importable torchvision for timm and transformers next to the CPU torch wheel.

See `timesformer_jax.bench.reference.import_torchvision_without_c_ops` for why.
"""
from timesformer_jax.bench.reference import import_torchvision_without_c_ops

import_torchvision_without_c_ops()
