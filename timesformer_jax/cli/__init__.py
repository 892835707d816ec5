"""The `timesformer` command (`python -m timesformer_jax`): one module per subcommand, each with `run(argv)`."""
