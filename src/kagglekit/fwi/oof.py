"""Out-of-fold predictions of run folders, aligned with their ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.config import load_config
from kagglekit.engine.runs import run_folders
from kagglekit.fwi.data.readers import DataError
from kagglekit.fwi.data.training import TrainingData
from kagglekit.fwi.metrics import mae_table


@dataclass
class OOF:
    name: str
    predictions: np.ndarray  # (N, 70, 70) float32
    ids: pd.DataFrame  # sample_id, family, fold (sorted by sample_id)
    truth: np.ndarray  # (N, 70, 70) float32
    data_roots: list[str]  # the folders the runs trained on (data.roots; OOF sample ids are their row keys)

    def table(self, predictions: np.ndarray | None = None, mask: np.ndarray | None = None) -> dict[str, float]:
        """The Kaggle metric (overall, per family) and the all-columns MAE of these rows."""
        pred = self.predictions if predictions is None else predictions
        mask = np.ones(len(pred), bool) if mask is None else mask
        return mae_table(pred[mask], self.truth[mask], self.ids["family"].to_numpy()[mask])


def load_oof(path: str | Path) -> OOF:
    """A run folder (one fold) or a config folder (`runs/<config>`: its folds merged)."""
    path = Path(path)
    folds = run_folders([path], marker="oof.npy")
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
    roots = load_config(folds[0] / "config.yaml").data.folders
    data = TrainingData(roots)
    order = np.argsort(ids["sample_id"].to_numpy())
    ids, pred = ids.iloc[order].reset_index(drop=True), pred[order]
    keys = ids["sample_id"].to_numpy()
    ids["fold"] = data.index["fold"].to_numpy()[keys]
    truth = data.velocities(keys)
    name = path.name if len(folds) > 1 or path != folds[0] else f"{path.parent.name}/{path.name}"
    return OOF(name, pred, ids, truth, roots)
