"""A config file (for `--config`) that gives back a training workdir's stored config: `--config
timesformer_jax/train/workdir_config.py:WORKDIR`. The tools insert it when `--workdir` holds a run and no
`--config` is given, so `--config.FIELD=VALUE` overrides apply to the run's own config."""
from timesformer_jax.train.run_record import stored_config


def get_config(workdir: str):
    return stored_config(workdir)
