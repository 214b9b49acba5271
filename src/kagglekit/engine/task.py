"""The contract between the engine and a competition, and the task registry.

A competition is a package that describes itself with a `TaskSpec` (its config sections, its
model registry, its defaults, its sub-commands) and makes that spec findable through the entry
point group `kagglekit.tasks` (in its pyproject) or, inside a process, `register_task(spec)`.
The engine, the config loader and the command line know tasks only through this registry.

A task object (built by `spec.build(cfg)`) follows `Task` below: datasets for a fold, a model,
forward(model, batch) -> output, loss(output, batch) -> dict of terms whose total is "loss" (the
engine back-propagates "loss" and logs every term as `train_<term>`), evaluate(outputs, keys) ->
metrics (the primary one decides the best epoch), the out-of-fold arrays to save and a report.
Every optional hook the engine (or a shared module) looks for is listed in `Task`'s docstring.

`config.py` imports this module, never the reverse (configs reach it as plain objects): the
config loader finds each task's schemas here.
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

    from kagglekit.kaggle.kind import KernelKind

ENTRY_POINT_GROUP = "kagglekit.tasks"


class Task(Protocol):
    """What `spec.build(cfg)` returns. Batches are dicts of tensors; outputs are tensors.

    Optional hooks, each looked up with hasattr (a task defines only those it needs):
    - prepare_batch(batch) -> batch: finishes a training batch on the device before forward
      (fwi: simulates the seismic of on-the-fly maps in one batched call). Engine, every step.
    - train_loss(output, batch, progress) -> dict of terms: the training objective when a term
      depends on training progress (0.0 at the start, 1.0 when the schedule ends; e.g. a weight
      ramped in). The engine calls it instead of loss() while training, inside autocast (a term
      that needs float32 leaves autocast itself); "loss" is the total, every term is logged.
    - extra_data() -> ExtraData | None: a second stream of inputs (e.g. unlabeled test data).
      Every `ExtraData.every` training batches the engine draws one of its batches (sharded and
      reshuffled like the training set), calls extra_loss on it, and back-propagates its "loss"
      into the same accumulation step (under DDP's no_sync: the next labeled backward reduces it).
    - extra_loss(model, batch, progress) -> dict of terms: the objective of one extra batch; the
      task runs the model itself (e.g. twice, for a consistency term). Logged as
      `train_<ExtraData.name>_<term>`; "loss" is the total back-propagated.
    - flip_input(batch) -> batch and flip_output(output) -> output: the flip TTA (engine/tta.py);
      flip_tta_valid (bool attribute, default True) switches it off where a mirror changes the data.
    - after_fit(run_dir): runs on rank 0 once training ends (vision: calibration).
    - test_dataset() -> Dataset: the labelled test split kept out of every fold (vision: predict,
      quantisation and the Kaggle kernel read it).
    The engine also calls `set_epoch(epoch)` on a training dataset that has it (data new every epoch).
    """

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


@dataclass(frozen=True)
class ExtraData:
    """A task's second stream of training inputs (see `Task.extra_data`)."""

    name: str  # the prefix of its logged terms: train_<name>_<term>
    dataset: Dataset
    batch_size: int
    every: int = 1  # one extra batch every `every` training batches

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.every < 1:
            raise ValueError(f"ExtraData '{self.name}': batch_size and every must be >= 1, got {self.batch_size}, {self.every}")


@dataclass(frozen=True)
class TaskSpec:
    """What a competition tells kagglekit about itself."""

    name: str  # the `task:` value of its configs and its sub-command: `kagglekit <name> ...`
    help: str
    data_config: type[BaseModel]  # the schema of the config's `data:` section (unknown keys rejected)
    build: Callable[[Any], Task]  # the task object for a validated config (kagglekit.config.Config)
    models: Registry  # the task's own model registry (names never collide across tasks)
    defaults: dict[str, Any] = field(default_factory=dict)  # config values under the file's own
    add_commands: Callable[[argparse._SubParsersAction], None] | None = None  # `kagglekit <name> <command>`
    # more top-level config sections of its own, e.g. {"physics": PhysicsConfig}: strict schemas
    # (unknown keys rejected), each filled with its defaults when the file leaves it out
    sections: dict[str, type[BaseModel]] = field(default_factory=dict)
    # config keys that moved, old dotted key -> new one (e.g. "train.physics_weight" -> "physics.weight"):
    # a config still using the old key is refused with a pointer to the new one
    moved: dict[str, str] = field(default_factory=dict)
    # rules across sections: cfg -> problems, each "dotted.key: what is wrong" (empty when valid)
    check: Callable[[Any], list[str]] | None = None
    kernels: tuple[KernelKind, ...] = ()  # the Kaggle kernels it ships (`kagglekit kaggle render-kernel KIND`)


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


def build_task(cfg: Any) -> Task:  # cfg: a validated kagglekit.config.Config
    return get_task(cfg.task).build(cfg)
