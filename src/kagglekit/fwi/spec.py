"""The waveform-inversion task as kagglekit knows it: data schema, models, defaults, commands.

Registered through the `kagglekit.tasks` entry point (pyproject.toml); nothing here imports
torch models or data code until a command or a run needs them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kagglekit.config import Strict
from kagglekit.engine.task import TaskSpec
from kagglekit.fwi.commands import add_commands
from kagglekit.fwi.kernels import KERNELS
from kagglekit.fwi.models import MODELS


class SimulateConfig(Strict):
    """On-the-fly simulation (fwi/data/simulated.py): fresh pairs every epoch, mixed with the folders."""

    ratio: float = Field(0.5, gt=0.0, description="simulated samples per training row, every epoch")
    methods: list[Literal["family", "blend", "mixup", "affine"]] = Field(
        default_factory=lambda: ["family", "blend"], description="how maps are drawn (parents: the fold's training rows)"
    )
    seed: int | None = Field(None, description="seed of the drawn maps (default: train.seed); epochs differ")
    where: Literal["auto", "workers", "device"] = Field(
        "auto",
        description="simulate in DataLoader workers, or batched on the training device (auto: device on a GPU or with 0 workers)",
    )


class FWIDataConfig(Strict):
    root: str = Field("data/synthetic/converted", description="folder written by `kagglekit fwi convert`")
    roots: list[str] | None = Field(
        None,
        description="several folders read as one (replaces root): conversions give folds; generated folders "
        "(`fwi augment`, `fwi pseudo-label`) only ever train",
    )
    repeats: list[int] | None = Field(
        None, description="times each folder's training rows appear per epoch, one per roots entry (e.g. weigh pseudo-labels)"
    )
    flip_prob: float = Field(0.5, ge=0.0, le=1.0, description="probability of the physical horizontal flip")
    time_scale_prob: float = Field(0.0, ge=0.0, le=1.0, description="probability of velocity x a <=> time x 1/a")
    time_scale_range: tuple[float, float] = Field((0.8, 1.2), description="range of the factor a")
    simulate: SimulateConfig | None = Field(None, description="on-the-fly simulated samples mixed into training")
    max_train_samples: int | None = Field(None, ge=1, description="cap on training samples (tiny runs)")
    unlabeled: str | None = Field(
        None, description="folder of <id>.npy test seismic trained on by the physics terms alone (needs physics.weight > 0)"
    )

    @property
    def folders(self) -> list[str]:
        """The folders a run reads: `roots`, or `root` alone."""
        return list(self.roots) if self.roots else [self.root]


class PhysicsConfig(Strict):
    """The physics loss terms (fwi/task.py): the relative seismic misfit of predicted maps against
    their own input seismic (never the label), on labeled batches and on `data.unlabeled` batches."""

    weight: float = Field(0.0, ge=0.0, description="weight of the relative seismic misfit of the prediction; 0 = off")
    warmup: float = Field(0.1, ge=0.0, le=1.0, description="share of training over which the weight ramps up from 0")
    samples: int = Field(2, ge=1, description="samples of each batch (and per unlabeled batch) the misfit simulates")
    cycle_weight: float = Field(
        0.0, ge=0.0, description="weight of cycle consistency on unlabeled batches (predict, simulate, predict again: L1)"
    )
    unlabeled_every: int = Field(4, ge=1, description="one unlabeled batch (physics terms only) every N training batches")


# the physics keys lived in the core `train:` section before the task owned its loss terms
MOVED = {
    "train.physics_weight": "physics.weight",
    "train.physics_warmup": "physics.warmup",
    "train.physics_samples": "physics.samples",
    "train.cycle_weight": "physics.cycle_weight",
    "train.unlabeled_every": "physics.unlabeled_every",
}


def _check(cfg) -> list[str]:
    problems = []
    if cfg.data.unlabeled and cfg.physics.weight == 0:
        problems.append(
            f"data.unlabeled: unlabeled seismic ({cfg.data.unlabeled}) trains through the physics terms alone; "
            "set physics.weight > 0 or drop data.unlabeled"
        )
    if cfg.physics.cycle_weight > 0 and not cfg.data.unlabeled:
        problems.append("physics.cycle_weight: the cycle term runs on unlabeled batches only; set data.unlabeled")
    return problems


def _build(cfg):
    from kagglekit.fwi.task import FWITask

    return FWITask(cfg)


TASK = TaskSpec(
    name="fwi",
    help="waveform inversion: data, physics, predictions, CV, ensembles, submissions",
    data_config=FWIDataConfig,
    build=_build,
    models=MODELS,
    defaults={"train": {"loss": "l1"}},
    add_commands=add_commands,
    kernels=KERNELS,
    sections={"physics": PhysicsConfig},
    moved=MOVED,
    check=_check,
)
