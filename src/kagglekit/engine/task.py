"""The contract between the engine and a competition.

A task supplies: datasets for a fold, a model, forward(model, batch) -> output,
loss(output, batch) -> dict of terms whose total is "loss", and evaluate(outputs, keys) ->
metrics (the primary one decides the best epoch), plus the out-of-fold arrays to save.
"""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd
import torch
from torch.utils.data import Dataset

from kagglekit.registry import TASKS


class Task(Protocol):
    primary_metric: str
    greater_is_better: bool
    eval_keys: tuple[str, ...]  # batch entries the engine keeps for evaluate()

    def datasets(self, fold: int) -> tuple[Dataset, Dataset | None]: ...

    def build_model(self) -> torch.nn.Module: ...

    def forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def evaluate(self, outputs: torch.Tensor, keys: dict[str, torch.Tensor]) -> dict[str, float]: ...

    def oof(self, outputs: torch.Tensor, keys: dict[str, torch.Tensor]) -> tuple[Any, pd.DataFrame]: ...

    def report(self, metrics: dict[str, float]) -> str: ...

    # optional: after_fit(run_dir) runs on rank 0 once training ends (e.g. calibration)


def build_task(cfg) -> Task:
    if cfg.task == "fwi":
        import kagglekit.fwi.task  # noqa: F401  (registers "fwi")
    elif cfg.task == "vision":
        import kagglekit.vision.task  # noqa: F401  (registers "vision")
    return TASKS.build(cfg.task, cfg=cfg)
