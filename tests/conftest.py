import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kagglekit.fwi.synthetic import make_competition


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def synthetic_competition(tmp_path_factory):
    """A tiny simulated competition in the Kaggle layout (4 samples per file, 4 test ids)."""
    return make_competition(tmp_path_factory.mktemp("competition") / "comp", per_file=4, n_test=4, seed=0, progress=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


FWI_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fwi"


def train_command(config: str, *overrides: str, fold: int = 0, nproc: int | None = None) -> list[str]:
    """`kagglekit train configs/fwi/<config>.yaml --fold F OVERRIDES` in a subprocess, under torchrun with `nproc`."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc else []
    return [
        sys.executable,
        *launcher,
        "-m",
        "kagglekit.cli",
        "train",
        str(FWI_CONFIGS / f"{config}.yaml"),
        "--fold",
        str(fold),
        *overrides,
    ]
