"""Out-of-fold predictions of run folders, aligned with their ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.config import load_config
from kagglekit.fwi.data.datasets import ConvertedFolder
from kagglekit.fwi.data.readers import DataError


@dataclass
class OOF:
    name: str
    predictions: np.ndarray  # (N, 70, 70) float32
    ids: pd.DataFrame  # sample_id, family, fold (sorted by sample_id)
    truth: np.ndarray  # (N, 70, 70) float32


def _fold_dirs(path: Path) -> list[Path]:
    if (path / "oof.npy").is_file():
        return [path]
    folds = sorted(p for p in path.iterdir() if p.is_dir() and (p / "oof.npy").is_file()) if path.is_dir() else []
    if not folds:
        raise DataError(f"{path}: no oof.npy here or in its fold folders (train a run first)")
    return folds


def load_oof(path: str | Path) -> OOF:
    """A run folder (one fold) or a config folder (`runs/<config>`: its folds merged)."""
    path = Path(path)
    folds = _fold_dirs(path)
    preds, frames = [], []
    for run in folds:
        p = np.load(run / "oof.npy").astype(np.float32)
        f = pd.read_csv(run / "oof_ids.csv")
        if len(p) != len(f):
            raise DataError(f"{run}: oof.npy has {len(p)} rows but oof_ids.csv {len(f)}")
        preds.append(p)
        frames.append(f)
    ids = pd.concat(frames, ignore_index=True)
    pred = np.concatenate(preds)
    if ids["sample_id"].duplicated().any():
        raise DataError(f"{path}: the same sample appears in several folds' OOF")
    cfg = load_config(folds[0] / "config.yaml")
    folder = ConvertedFolder(cfg.data.root)
    order = np.argsort(ids["sample_id"].to_numpy())
    ids, pred = ids.iloc[order].reset_index(drop=True), pred[order]
    ids["fold"] = folder.index.set_index("sample_id").loc[ids["sample_id"], "fold"].to_numpy()
    truth = np.asarray(np.load(folder.root / "velocity.npy", mmap_mode="r")[ids["sample_id"].to_numpy()], dtype=np.float32)
    name = path.name if len(folds) > 1 or path != folds[0] else f"{path.parent.name}/{path.name}"
    return OOF(name, pred, ids, truth)


def mae_table(oof: OOF, predictions: np.ndarray | None = None, mask: np.ndarray | None = None) -> dict[str, float]:
    """Overall and per-family MAE (m/s) over all 70 columns."""
    pred = oof.predictions if predictions is None else predictions
    mask = np.ones(len(pred), bool) if mask is None else mask
    err = np.abs(pred[mask] - oof.truth[mask]).mean(axis=(1, 2))
    fam = oof.ids["family"].to_numpy()[mask]
    out = {"all": float(err.mean()) if len(err) else float("nan")}
    for name in sorted(set(fam)):
        out[name] = float(err[fam == name].mean())
    return out
