"""Fixtures and helpers shared by the test modules (which never import one another)."""

import os

# One simulation thread per test process, set before torch and deepwave (which bundles its own
# OpenMP runtime) are imported: subprocesses inherit it, and tests that run beside other work
# do not oversubscribe the cores (kagglekit.parallel).
os.environ["OMP_NUM_THREADS"] = "1"

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kagglekit.config import load_config, save_config
from kagglekit.engine.checkpoint import save_checkpoint
from kagglekit.engine.task import build_task
from kagglekit.fwi.data.convert import convert
from kagglekit.fwi.synthetic import make_competition

ROOT = Path(__file__).resolve().parents[1]
FWI_CONFIGS = ROOT / "configs" / "fwi"
KAGGLE = Path(sys.executable).parent / "kaggle"


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


@pytest.fixture(scope="module")
def converted(synthetic_competition, tmp_path_factory):
    """`fwi convert` of the synthetic competition's train_samples; one per test module (some
    modules reassign its folds in place)."""
    return convert(synthetic_competition / "train_samples", tmp_path_factory.mktemp("conv") / "c", progress=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


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


def make_run(root: Path, config: str, fold: str = "fold0", *overrides: str) -> Path:
    """A run folder as `fit` leaves it (resolved config.yaml, best.pt with the model weights);
    `config` is "<task>/<name>" under configs/."""
    cfg = load_config(ROOT / "configs" / config.split("/")[0] / f"{config.split('/')[1]}.yaml", [f"out_dir={root}", *overrides])
    run = root / cfg.name / fold
    run.mkdir(parents=True)
    save_config(cfg, run / "config.yaml")
    torch.manual_seed(0)
    model = build_task(cfg).build_model()
    save_checkpoint({"model": model.state_dict(), "epoch": 2, "metrics": {"mae": 123.4, "mae/FlatVel_A": 99.0}}, run / "best.pt")
    return run


def kaggle_env(home: Path) -> dict:
    """Dummy username/key (checked only over the network), no token, config in a temp dir (docs/reference/kaggle-facts.md)."""
    env = {k: v for k, v in os.environ.items() if k != "KAGGLE_API_TOKEN"}
    return {**env, "KAGGLE_USERNAME": "kagglekit-test", "KAGGLE_KEY": "0" * 32, "HOME": str(home), "KAGGLE_CONFIG_DIR": str(home)}


def kaggle_cli(*args: str, home: Path) -> str:
    """The real `kaggle` CLI, offline; its stdout + stderr."""
    result = subprocess.run([str(KAGGLE), *args], env=kaggle_env(home), capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr
