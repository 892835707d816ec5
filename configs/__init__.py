"""Training configs, one per setting (`get_config(arg)` returns an `ml_collections.ConfigDict`).

Installed as `timesformer_jax.configs`, so commands find them by name: `timesformer train --config k400_base`
is `--config configs/k400_base.py` in a checkout.
"""
