"""Atomic checkpoint save; loads that name the file and the problem."""

from __future__ import annotations

from pathlib import Path

import torch

from kagglekit.errors import UserError
from kagglekit.io import atomic_torch_save


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, or not the kind expected."""


def save_checkpoint(state: dict, path: Path) -> None:
    atomic_torch_save(state, path)


def load_checkpoint(path: Path, required: tuple[str, ...] = ()) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); delete it to restart this fold"
        ) from exc
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; not a kagglekit checkpoint of this kind")
    return state
