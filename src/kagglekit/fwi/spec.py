"""The waveform-inversion task as kagglekit knows it: data schema, models, defaults, commands.

Registered through the `kagglekit.tasks` entry point (pyproject.toml); nothing here imports
torch models or data code until a command or a run needs them.
"""

from __future__ import annotations

from pydantic import Field

from kagglekit.config import Strict
from kagglekit.engine.task import TaskSpec
from kagglekit.fwi.commands import add_commands
from kagglekit.fwi.models import MODELS


class FWIDataConfig(Strict):
    root: str = Field("data/synthetic/converted", description="folder written by `kagglekit fwi convert`")
    flip_prob: float = Field(0.5, ge=0.0, le=1.0, description="probability of the physical horizontal flip")
    max_train_samples: int | None = Field(None, ge=1, description="cap on training samples (tiny runs)")
    unlabeled: str | None = Field(
        None, description="folder of <id>.npy test seismic trained on by the physics terms alone (needs train.physics_weight)"
    )


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
)
