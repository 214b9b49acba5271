"""Typed experiment configs: YAML -> validated pydantic objects, dotted overrides, saved resolved.

The core sections (model, train, out_dir) live here; `data` belongs to the task, whose registered
schema validates it. Unknown keys and wrong types fail with the file and the dotted key named. A config never
mutates a shared default: every load builds fresh objects.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, create_model

from kagglekit.errors import UserError
from kagglekit.io import atomic_write_text

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(UserError):
    """A config file or override is invalid; the message names the file and the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Strict):
    name: str
    pretrained: str | None = Field(None, description="local checkpoint file; nothing is downloaded")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    qat_bits: int | None = Field(None, ge=2, le=8, description="quantisation-aware training of weights (vision)")


class AugmentStep(Strict):
    """One albumentations transform: `{name: HorizontalFlip, params: {p: 0.5}}`."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)
    accum_steps: int = Field(1, ge=1)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    ema_decay: float | None = Field(0.99, gt=0, lt=1)
    loss: str = Field("l1", description="loss by name (kagglekit.losses.LOSSES); a task may set its own default")
    compile: bool = False
    seed: int = 0
    max_minutes: float | None = Field(
        None, gt=0, description="wall-time budget: the schedule anneals by the larger of step and time progress"
    )
    channels_last: bool = False
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    physics_weight: float = Field(
        0.0, ge=0.0, description="weight of the task's physics term (fwi: relative seismic misfit of the prediction); 0 = off"
    )
    physics_warmup: float = Field(
        0.1, ge=0.0, le=1.0, description="share of training over which the physics weight ramps up from 0"
    )
    physics_samples: int = Field(
        2, ge=1, description="samples of each batch (and per unlabeled batch) the physics term simulates"
    )
    cycle_weight: float = Field(0.0, ge=0.0, description="weight of the cycle-consistency term on unlabeled batches")
    unlabeled_every: int = Field(4, ge=1, description="one unlabeled batch (physics terms only) every N training batches")


class Config(Strict):
    """The core of every config; `data` is the task's own schema (see `config_class`)."""

    name: str
    task: str = Field(description="registered task: its schema checks `data`, its code trains")
    data: SerializeAsAny[Strict]
    model: ModelConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    out_dir: str = "runs"


@functools.cache
def config_class(task: str) -> type[Config]:
    """Config with `data` typed by the task's schema (one class per task, built once)."""
    from kagglekit.engine.task import get_task

    spec = get_task(task)
    return create_model(
        f"{spec.data_config.__name__.removesuffix('DataConfig')}Config",
        __base__=Config,
        data=(spec.data_config, Field(default_factory=spec.data_config)),
    )


def _merge_defaults(defaults: dict, values: dict) -> dict:
    """`values` over `defaults`, section by section (a new dict; neither input changes)."""
    out = copy.deepcopy(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_defaults(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: override '{dotted}': '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """['train.lr=3e-4', 'model.name=unet'] -> [(key, YAML-parsed value)]."""
    parsed = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else None
        if isinstance(value, str) and _FLOAT.fullmatch(raw.strip()):
            value = float(raw)  # YAML 1.1 reads 3e-4 as a string
        parsed.append((key.strip(), value))
    return parsed


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        key = ".".join(loc)
        lines.append(f"  {key}: {e['msg']} (found {e.get('input')!r})")
    return "\n".join(lines)


def config_from_dict(data: dict, source: str = "<dict>", overrides: list[str] | None = None) -> Config:
    """Validate a config dict (never modified) with dotted overrides applied, under the task's defaults."""
    data = copy.deepcopy(data)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value, source)
    task = data.get("task")
    if not isinstance(task, str):
        raise ConfigError(f"{source}: invalid config\n  task: required, one of the registered tasks (found {task!r})")
    from kagglekit.engine.task import TASKS

    if task not in TASKS:
        raise ConfigError(f"{source}: invalid config\n  task: unknown task {task!r}; registered: {', '.join(TASKS.names())}")
    data = _merge_defaults(TASKS.get(task).defaults, data)
    try:
        return config_class(task).model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load a YAML config; `name` defaults to the file stem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, found {type(data).__name__}")
    data.setdefault("name", path.stem)
    return config_from_dict(data, source=str(path), overrides=overrides)


def save_config(cfg: Config, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
