"""Parameter counts of every registered model at its default size (`kagglekit models`)."""

from __future__ import annotations

import torch

from kagglekit.engine.task import get_task


def count_parameters(task: str, model: str) -> int:
    """Parameters of `model` built with its default arguments, on the meta device (no memory, no data)."""
    with torch.device("meta"):
        net = get_task(task).models.build(model)
    return sum(p.numel() for p in net.parameters())


def model_rows(tasks: list[str]) -> list[tuple[str, str, float]]:
    return [(task, name, count_parameters(task, name) / 1e6) for task in tasks for name in get_task(task).models.names()]
