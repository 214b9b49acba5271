"""The image-classification task as kagglekit knows it: data schema, models, defaults, commands."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kagglekit.config import AugmentStep, Strict
from kagglekit.engine.task import TaskSpec
from kagglekit.vision import MODELS
from kagglekit.vision.commands import add_commands
from kagglekit.vision.kernels import KERNELS


class VisionDataConfig(Strict):
    dataset: Literal["fashion_mnist", "digits", "cifar10", "hirise", "folder"] = "fashion_mnist"
    root: str = "/usr/share/datasets/fashion-mnist"
    labels_csv: str | None = Field(None, description="dataset 'folder': CSV with id,label")
    n_folds: int = Field(5, ge=2)
    fold_seed: int = 0
    holdout: float = Field(0.0, ge=0.0, lt=1.0)
    val_split_as_fold: bool = Field(False, description="HiRISE: use the official val split as the validation fold")
    image_size: int | None = Field(None, ge=8, description="resize to a square of this size")
    augment: list[AugmentStep] = Field(default_factory=list)
    flip_invariant: bool = Field(True, description="a mirrored image keeps its class: flip TTA at prediction")
    mean: float = 0.5
    std: float = 0.25
    max_train_samples: int | None = Field(None, ge=1)
    hirise_dedupe: bool = True
    hirise_originals_only: bool = False


def _build(cfg):
    from kagglekit.vision.task import VisionTask

    return VisionTask(cfg)


TASK = TaskSpec(
    name="vision",
    help="image classification: test-split predictions, metrics, CSVs, integer export",
    data_config=VisionDataConfig,
    build=_build,
    models=MODELS,
    defaults={"train": {"loss": "cross_entropy"}},
    add_commands=add_commands,
    kernels=KERNELS,
)
