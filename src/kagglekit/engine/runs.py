"""Run folders: the one owner of `runs/<config>/<fold>/` and of rebuilding a run's model.

    runs/<config name>/fold<k>/ (or full/ for fold -1)
        config.yaml        the resolved config the run trained with
        best.pt  last.pt   best epoch (EMA weights) / state to resume from
        metrics.jsonl      one JSON record per epoch
        oof.npy  oof_ids.csv   out-of-fold predictions of the best epoch and their keys
        leaderboard.jsonl  one record per Kaggle submission made from this run

Nothing here imports torch at module level: the Kaggle runtime reads run folders before its
heavy imports.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagglekit.errors import UserError
from kagglekit.io import atomic_write_text

if TYPE_CHECKING:
    import torch

    from kagglekit.config import Config
    from kagglekit.engine.task import Task

_FOLD_NAME = re.compile(r"fold(\d+)|full")


class RunFolderError(UserError):
    """A folder that is not a run folder, or one of its files is not what the engine writes."""


@dataclass(frozen=True)
class RunFolder:
    """`runs/<config>/<fold>/` and the paths of everything a run writes there."""

    path: Path

    CONFIG = "config.yaml"
    BEST = "best.pt"
    LAST = "last.pt"
    METRICS = "metrics.jsonl"
    OOF = "oof.npy"
    OOF_IDS = "oof_ids.csv"
    LEADERBOARD = "leaderboard.jsonl"

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @staticmethod
    def fold_label(fold: int) -> str:
        """0 -> 'fold0'; -1 (all folds, holdout validation) -> 'full'."""
        return "full" if fold == -1 else f"fold{fold}"

    @classmethod
    def at(cls, out_dir: str | Path, config_name: str, fold: int) -> RunFolder:
        return cls(Path(out_dir) / config_name / cls.fold_label(fold))

    @classmethod
    def of(cls, cfg: Config, fold: int) -> RunFolder:
        """Where `cfg` trains `fold`: <out_dir>/<name>/fold<k>."""
        return cls.at(cfg.out_dir, cfg.name, fold)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def config_name(self) -> str:
        return self.path.parent.name

    @property
    def fold_name(self) -> str:
        return self.path.name

    @property
    def has_fold_name(self) -> bool:
        return _FOLD_NAME.fullmatch(self.path.name) is not None

    @property
    def fold(self) -> int:
        """The fold number its name says (-1 for 'full')."""
        match = _FOLD_NAME.fullmatch(self.path.name)
        if not match:
            raise RunFolderError(f"{self.path}: not a run folder name (expected <out_dir>/<config>/fold<k> or .../full)")
        return -1 if match.group(1) is None else int(match.group(1))

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def last(self) -> Path:
        return self.path / self.LAST

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def oof_path(self) -> Path:
        return self.path / self.OOF

    @property
    def oof_ids_path(self) -> Path:
        return self.path / self.OOF_IDS

    @property
    def leaderboard_path(self) -> Path:
        return self.path / self.LEADERBOARD

    def config(self, overrides: list[str] | tuple[str, ...] = ()) -> Config:
        """The run's resolved config (with dotted `overrides` applied)."""
        from kagglekit.config import load_config

        if not self.config_path.is_file():
            raise RunFolderError(f"{self.path}: no {self.CONFIG}; not a run folder (runs/<config>/fold<k>)")
        return load_config(self.config_path, list(overrides), saved=True)

    def read_metrics(self) -> list[dict]:
        """The epoch records of metrics.jsonl in order ([] before the first epoch)."""
        return _read_jsonl(self.metrics_path)

    def write_epoch_metrics(self, record: dict) -> None:
        """Add an epoch's record; records of that epoch or later (a session killed after writing
        them, then resumed from an earlier last.pt) are replaced. The file is rewritten atomically."""
        kept = [r for r in self.read_metrics() if r["epoch"] < record["epoch"]]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in [*kept, record]))

    def read_leaderboard(self) -> list[dict]:
        return _read_jsonl(self.leaderboard_path)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunFolderError(f"{path}: line {n} is not JSON ({exc.msg}): {line[:80]!r}") from None
        if not isinstance(record, dict):
            raise RunFolderError(f"{path}: line {n} is not a JSON object: {line[:80]!r}")
        records.append(record)
    return records


@dataclass
class LoadedRun:
    path: Path
    cfg: Config  # the run's config with model.pretrained cleared (the weights come from best.pt)
    task: Task
    model: torch.nn.Module  # best.pt weights (the EMA weights when EMA was on), eval mode
    checkpoint: dict  # best.pt's other entries (epoch, metrics, temperature, ...)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", overrides: list[str] | tuple[str, ...] = ()) -> LoadedRun:
    """Rebuild the model of a run folder from its config.yaml (plus `overrides`) and best.pt.

    Starting weights (`model.pretrained`) are never loaded: best.pt holds every weight, and the
    file they came from (a parent run, a backbone) need not exist where the run is loaded.
    """
    from kagglekit.engine.checkpoint import load_checkpoint
    from kagglekit.engine.task import build_task

    folder = RunFolder(run_dir)
    cfg = without_starting_weights(folder.config(overrides))
    task = build_task(cfg)
    best = load_checkpoint(folder.best, required=("model",))
    model = task.build_model()
    _load_weights(model, best.pop("model"), folder)
    return LoadedRun(folder.path, cfg, task, model.to(device).eval(), best)


def without_starting_weights(cfg: Config) -> Config:
    """`cfg` with model.pretrained cleared (a copy): for a model whose weights come from the run itself."""
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"pretrained": None})})


def _load_weights(model: torch.nn.Module, weights: dict, folder: RunFolder) -> None:
    load_weights(model, weights, folder.best, folder.config_path)


def load_weights(model: torch.nn.Module, weights: dict, checkpoint: Path, config: Path) -> None:
    """A checkpoint's weights into the model its config builds; a mismatch is one line naming both files."""
    if not isinstance(weights, dict) or not all(hasattr(v, "shape") for v in weights.values()):
        raise RunFolderError(f"{checkpoint}: its model entry is not a state dict of tensors")
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    reshaped = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise RunFolderError(
            f"{checkpoint}: its weights do not fit the '{type(model).__name__}' model that {config} builds "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape, e.g. {example!r}); "
            "the checkpoint and the config come from different runs"
        )
    model.load_state_dict(weights)


def run_folders(paths: list[str | Path], marker: str = RunFolder.BEST) -> list[Path]:
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


def record_leaderboard_score(
    run_dirs: list[str | Path], competition: str, score: float | None, csv: str | Path | None, message: str
) -> list[Path]:
    """Append a Kaggle submission (its public score once known, else None) to the leaderboard.jsonl
    of every run folder it was made from (run folders or config folders); returns the files written."""
    record: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "competition": competition,
        "score": None if score is None else float(score),
        "csv": None if csv is None else str(csv),
        "message": message,
    }
    written = []
    for path in run_folders(list(run_dirs)):
        folder = RunFolder(path)
        lines = [json.dumps(r) for r in folder.read_leaderboard()]
        atomic_write_text(folder.leaderboard_path, "".join(line + "\n" for line in [*lines, json.dumps(record)]))
        written.append(folder.leaderboard_path)
    return written
