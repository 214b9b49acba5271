"""Run folders: where a (config, fold) trains, and rebuilding its model from what it saved."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from kagglekit.config import Config, load_config
from kagglekit.engine.checkpoint import load_checkpoint
from kagglekit.engine.task import Task, build_task
from kagglekit.errors import UserError


def run_dir_for(cfg: Config, fold: int) -> Path:
    """runs/<config name>/fold<k>, or .../full for fold -1 (all folds, holdout validation)."""
    return Path(cfg.out_dir) / cfg.name / ("full" if fold == -1 else f"fold{fold}")


@dataclass
class LoadedRun:
    path: Path
    cfg: Config
    task: Task
    model: torch.nn.Module  # best.pt weights (the EMA weights when EMA was on), eval mode
    checkpoint: dict  # best.pt's other entries (epoch, metrics, temperature, ...)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> LoadedRun:
    """Rebuild the model of a run folder from its resolved config.yaml and best.pt."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir}: no config.yaml; not a run folder (runs/<config>/fold<k>)")
    cfg = load_config(run_dir / "config.yaml")
    task = build_task(cfg)
    best = load_checkpoint(run_dir / "best.pt", required=("model",))
    model = task.build_model()
    model.load_state_dict(best.pop("model"))
    return LoadedRun(run_dir, cfg, task, model.to(device).eval(), best)


def run_folders(paths: list[str | Path], marker: str = "best.pt") -> list[Path]:
    """Run folders named directly or found one level below a config folder (runs/<config>)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / marker).is_file():
            found.append(path)
            continue
        below = sorted(p for p in path.iterdir() if (p / marker).is_file()) if path.is_dir() else []
        if not below:
            raise UserError(f"{path}: no {marker} here or in its fold folders (train a run first)")
        found.extend(below)
    return found
