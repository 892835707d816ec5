"""The package and its shipped configs: `configs/` of the repository installs as `timesformer_jax.configs`."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["timesformer_jax", "timesformer_jax.*"]) + ["timesformer_jax.configs"],
    package_dir={"timesformer_jax.configs": "configs"},
)
