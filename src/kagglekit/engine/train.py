"""`train()`: one fold of a config, the library call behind `kagglekit train` and the Kaggle training kernel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kagglekit.config import Config, load_config


def train(
    config: str | Path | Config,
    fold: int = 0,
    overrides: Sequence[str] = (),
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> Path:
    """Train `config` (a YAML file, or an already loaded Config) on `fold`; returns the run folder.

    `overrides` are dotted `key=value` strings applied to a YAML file; `resume` continues from the
    run folder's last.pt; `stop_after=N` pauses after epoch N (continue later with `resume`).
    Under torchrun every rank calls this (DDP is set up by the engine from torchrun's environment).
    """
    from kagglekit.engine.fit import fit

    if isinstance(config, Config):
        if overrides:
            raise ValueError("overrides apply to a config file; pass a path, or apply them to the Config yourself")
        cfg = config
    else:
        cfg = load_config(config, list(overrides))
    return fit(cfg, fold=fold, resume=resume, stop_after=stop_after, progress=progress)
