"""Learning rate by training progress: linear warmup, then cosine decay to min_lr_ratio.

Progress is the larger of the step fraction and, under a wall-time budget (`train.max_minutes`),
the time fraction: a run cut short by a slow machine still anneals to the end of its schedule
instead of stopping with the learning rate still high.
"""

from __future__ import annotations

import math

import torch


class ProgressSchedule:
    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_lr_ratio: float):
        self.optimizer = optimizer
        self.total_steps = max(1, total_steps)
        self.warmup_steps = min(warmup_steps, self.total_steps - 1)
        self.min_lr_ratio = min_lr_ratio
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.progress = 0.0
        self._apply()

    def factor(self, progress: float) -> float:
        step = progress * self.total_steps
        if step < self.warmup_steps:
            return min(1.0, (step + 1) / self.warmup_steps)
        frac = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))

    def step(self, progress: float) -> None:
        """Set the learning rate of the next step for `progress` in [0, 1] (never goes back)."""
        self.progress = min(1.0, max(self.progress, progress))
        self._apply()

    def _apply(self) -> None:
        f = self.factor(self.progress)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    @property
    def done(self) -> bool:
        return self.progress >= 1.0

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"progress": self.progress, "base_lrs": self.base_lrs}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs = list(state["base_lrs"])
        self.progress = float(state["progress"])
        self._apply()
