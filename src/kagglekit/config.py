"""Typed experiment configs: YAML -> validated pydantic objects, dotted overrides, saved resolved.

Unknown keys and wrong types fail with the file and the dotted key named. A config never
mutates a shared default: every load builds fresh objects.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kagglekit.io import atomic_write_text


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FWIDataConfig(Strict):
    kind: Literal["fwi"] = "fwi"
    root: str = Field("data/synthetic/converted", description="folder written by `kagglekit fwi convert`")
    flip_prob: float = Field(0.5, ge=0.0, le=1.0)
    num_workers: int = Field(0, ge=0)
    max_train_samples: int | None = Field(None, ge=1, description="cap on training samples (tiny runs)")


class AugmentStep(Strict):
    """One albumentations transform: `{name: HorizontalFlip, params: {p: 0.5}}`."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class VisionDataConfig(Strict):
    kind: Literal["vision"] = "vision"
    dataset: Literal["fashion_mnist", "digits", "cifar10", "hirise", "folder"] = "fashion_mnist"
    root: str = "/usr/share/datasets/fashion-mnist"
    labels_csv: str | None = Field(None, description="dataset 'folder': CSV with id,label")
    n_folds: int = Field(5, ge=2)
    fold_seed: int = 0
    holdout: float = Field(0.0, ge=0.0, lt=1.0)
    val_split_as_fold: bool = Field(False, description="HiRISE: use the official val split as the validation fold")
    image_size: int | None = Field(None, ge=8, description="resize to a square of this size")
    augment: list[AugmentStep] = Field(default_factory=list)
    mean: float = 0.5
    std: float = 0.25
    tta_flip: bool = False
    num_workers: int = Field(0, ge=0)
    max_train_samples: int | None = Field(None, ge=1)
    hirise_dedupe: bool = True
    hirise_originals_only: bool = False


class ModelConfig(Strict):
    name: str
    pretrained: str | None = Field(None, description="local checkpoint file; nothing is downloaded")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    qat_bits: int | None = Field(None, ge=2, le=8, description="quantisation-aware training of weights (vision)")


class TrainConfig(Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)
    accum_steps: int = Field(1, ge=1)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    ema_decay: float | None = Field(0.99, gt=0, lt=1)
    loss: str = "l1"
    compile: bool = False
    seed: int = 0
    max_minutes: float | None = Field(None, gt=0, description="stop training after this wall time")
    channels_last: bool = False
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)


class Config(Strict):
    name: str
    task: Literal["fwi", "vision"] = "fwi"
    data: FWIDataConfig | VisionDataConfig = Field(default_factory=FWIDataConfig, discriminator="kind")
    model: ModelConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    out_dir: str = "runs"

    @model_validator(mode="before")
    @classmethod
    def _data_kind_follows_task(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("data"), dict):
            values["data"] = {"kind": values.get("task", "fwi"), **values["data"]}
        return values


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
        if len(loc) > 1 and loc[0] == "data" and loc[1] in ("fwi", "vision"):
            loc.pop(1)  # the union's tag, not a key of the file
        key = ".".join(loc)
        lines.append(f"  {key}: {e['msg']} (found {e.get('input')!r})")
    return "\n".join(lines)


def config_from_dict(data: dict, source: str = "<dict>", overrides: list[str] | None = None) -> Config:
    data = dict(data)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value, source)
    try:
        return Config.model_validate(data)
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
