"""Training: optimisers and schedules, losses (the loop, state and checkpointing build on these)."""
