"""The contract between the engine and a competition, and the task registry.

A competition is a package that describes itself with a `TaskSpec` (its data-config schema, its
model registry, its defaults, its sub-commands) and makes that spec findable through the entry
point group `kagglekit.tasks` (in its pyproject) or, inside a process, `register_task(spec)`.
The engine, the config loader and the command line know tasks only through this registry.

A task object (built by `spec.build(cfg)`) supplies: datasets for a fold, a model,
forward(model, batch) -> output, loss(output, batch) -> dict of terms whose total is "loss",
evaluate(outputs, keys) -> metrics (the primary one decides the best epoch), the out-of-fold
arrays to save, a report, and optionally a flip for test-time augmentation.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from kagglekit.registry import Registry

if TYPE_CHECKING:  # annotations only: the registry and the CLI load without torch
    import pandas as pd
    import torch
    from torch.utils.data import Dataset

    from kagglekit.config import Config

ENTRY_POINT_GROUP = "kagglekit.tasks"


class Task(Protocol):
    primary_metric: str
    greater_is_better: bool
    eval_keys: tuple[str, ...]  # batch entries the engine keeps for evaluate()

    def datasets(self, fold: int) -> tuple[Dataset, Dataset | None]: ...

    def fold_signature(self) -> str: ...  # changes when the fold assignment changes

    def build_model(self) -> torch.nn.Module: ...

    def forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def evaluate(self, outputs: torch.Tensor, keys: dict[str, torch.Tensor]) -> dict[str, float]: ...

    def oof(self, outputs: torch.Tensor, keys: dict[str, torch.Tensor]) -> tuple[Any, pd.DataFrame]: ...

    def report(self, metrics: dict[str, float]) -> str: ...

    # optional:
    #   flip_input(batch) -> batch and flip_output(output) -> output: the flip TTA (engine/tta.py)
    #   after_fit(run_dir): runs on rank 0 once training ends (e.g. calibration)
    #   physics(model, output, batch, cycle) -> {"physics": tensor[, "cycle": tensor]}: unweighted
    #     terms that need no label (computed in float32 outside autocast on a sub-batch); the
    #     engine weights them with train.physics_weight (ramped) and train.cycle_weight
    #   unlabeled_dataset() -> Dataset | None: inputs without labels, trained on by physics() alone


@dataclass(frozen=True)
class TaskSpec:
    """What a competition tells kagglekit about itself."""

    name: str  # the `task:` value of its configs and its sub-command: `kagglekit <name> ...`
    help: str
    data_config: type[BaseModel]  # the schema of the config's `data:` section (unknown keys rejected)
    build: Callable[[Config], Task]  # the task object for a validated config
    models: Registry  # the task's own model registry (names never collide across tasks)
    defaults: dict[str, Any] = field(default_factory=dict)  # config values under the file's own
    add_commands: Callable[[argparse._SubParsersAction], None] | None = None  # `kagglekit <name> <command>`


def _load_entry_points(registry: Registry) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        spec = ep.load()
        if not isinstance(spec, TaskSpec) or spec.name != ep.name:
            raise TypeError(f"entry point {ep.name} = {ep.value} must be a TaskSpec named '{ep.name}'")
        registry.register(spec.name, spec)


TASKS = Registry("task", loader=_load_entry_points)


def register_task(spec: TaskSpec) -> TaskSpec:
    """Make a task known in this process (installed packages are found through entry points)."""
    TASKS.register(spec.name, spec)
    return spec


def get_task(name: str) -> TaskSpec:
    return TASKS.get(name)


def build_task(cfg: Config) -> Task:
    return get_task(cfg.task).build(cfg)
