"""Typed experiment configs: YAML -> validated pydantic objects, dotted overrides, saved resolved.

The core sections (model, train, out_dir) live here; `data` and any section a task declares
(`TaskSpec.sections`, e.g. fwi's `physics:`) belong to the task, whose registered schemas validate
them. Unknown keys, wrong types, keys a task moved elsewhere and the task's rules across sections
fail with the file and the dotted key named. A config never mutates a shared default: every load
builds fresh objects.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, create_model

from kagglekit.engine.task import TASKS, TaskSpec, get_task
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


class Config(Strict):
    """The core of every config; `data` and the task's own sections are typed by the task (see `config_class`)."""

    name: str
    task: str = Field(description="registered task: its schema checks `data`, its code trains")
    data: SerializeAsAny[Strict]
    model: ModelConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    out_dir: str = "runs"


@functools.cache
def config_class(task: str) -> type[Config]:
    """Config with `data` and the task's own sections typed by its schemas (one class per task, built once)."""
    spec = get_task(task)
    clash = sorted(set(spec.sections) & set(Config.model_fields))
    if clash:
        raise TypeError(f"task '{task}': sections {clash} would replace core config sections")
    sections = {name: (schema, Field(default_factory=schema)) for name, schema in spec.sections.items()}
    return create_model(
        f"{spec.data_config.__name__.removesuffix('DataConfig')}Config",
        __base__=Config,
        data=(spec.data_config, Field(default_factory=spec.data_config)),
        **sections,
    )


def _has_dotted(tree: dict, dotted: str) -> bool:
    node = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _refuse_moved_keys(spec: TaskSpec, data: dict, source: str) -> None:
    """One line naming every key of `data` the task moved, and where each lives now."""
    found = [(old, new) for old, new in spec.moved.items() if _has_dotted(data, old)]
    if found:
        moves = ", ".join(f"{old} is now {new}" for old, new in found)
        sections = ", ".join(sorted({f"{new.split('.')[0]}:" for _, new in found}))
        raise ConfigError(f"{source}: {moves} (moved to the '{spec.name}' task's {sections} section); rename")


def _migrate_moved_keys(spec: TaskSpec, data: dict) -> None:
    """Move every key the task moved to its new home, in place (a run folder's config.yaml saved
    by an older kagglekit holds the old keys with their resolved values)."""
    for old, new in spec.moved.items():
        if not _has_dotted(data, old):
            continue
        *parents, leaf = old.split(".")
        node = data
        for key in parents:
            node = node[key]
        value = node.pop(leaf)
        if not _has_dotted(data, new):
            _set_dotted(data, new, value, "<saved config>")


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


def config_from_dict(data: dict, source: str = "<dict>", overrides: list[str] | None = None, saved: bool = False) -> Config:
    """Validate a config dict (never modified) with dotted overrides applied, under the task's defaults.

    `saved=True` reads a config kagglekit wrote itself (a run folder's config.yaml): keys a task
    moved since are carried to their new place instead of refused."""
    data = copy.deepcopy(data)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value, source)
    task = data.get("task")
    if not isinstance(task, str):
        raise ConfigError(f"{source}: invalid config\n  task: required, one of the registered tasks (found {task!r})")
    if task not in TASKS:
        raise ConfigError(f"{source}: invalid config\n  task: unknown task {task!r}; registered: {', '.join(TASKS.names())}")
    spec = get_task(task)
    if saved:
        _migrate_moved_keys(spec, data)
    _refuse_moved_keys(spec, data, source)
    data = _merge_defaults(spec.defaults, data)
    try:
        cfg = config_class(task).model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None
    problems = spec.check(cfg) if spec.check is not None else []
    if problems:
        raise ConfigError(f"{source}: {'; '.join(problems)}")
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None, saved: bool = False) -> Config:
    """Load a YAML config; `name` defaults to the file stem (`saved`: see `config_from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:  # one line: where, and what the parser expected
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {what}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, found {type(data).__name__}")
    data.setdefault("name", path.stem)
    return config_from_dict(data, source=str(path), overrides=overrides, saved=saved)


def save_config(cfg: Config, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
