"""Flip test-time augmentation: the one place that averages a plain and a flipped pass.

Used by prediction in every task (`fwi predict`, `vision predict`, the Kaggle kernel). Validation
during training scores the plain pass only, in every task, so the per-epoch metric, the best
epoch and the out-of-fold predictions are comparable across runs whatever the TTA setting.
A task supports it by defining `flip_input(batch) -> batch` and `flip_output(output) -> output`
(what the flip means is task knowledge: mirrored images, or mirrored receivers and sources), and
may switch it off for data a mirror changes (digits, text) with `flip_tta_valid = False`.
"""

from __future__ import annotations

import torch


def supports_flip(task) -> bool:
    return hasattr(task, "flip_input") and hasattr(task, "flip_output") and getattr(task, "flip_tta_valid", True)


@torch.no_grad()
def predict_batch(task, model: torch.nn.Module, batch: dict[str, torch.Tensor], tta: bool) -> torch.Tensor:
    """The task's output for a batch (float32); with `tta` (and a task that supports it), the mean
    of the plain and the flipped pass."""
    out = task.forward(model, batch).float()
    if tta and supports_flip(task):
        flipped = task.forward(model, task.flip_input(batch)).float()
        out = 0.5 * (out + task.flip_output(flipped))
    return out
