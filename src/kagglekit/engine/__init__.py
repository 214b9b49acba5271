"""Task-agnostic training engine: fit loop, EMA, AMP, DDP, checkpoints, schedule."""
