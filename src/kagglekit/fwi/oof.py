"""Out-of-fold predictions of run folders, aligned with their ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.engine.runs import RunFolder, run_folders
from kagglekit.fwi.data.readers import DataError
from kagglekit.fwi.data.training import TrainingData
from kagglekit.fwi.metrics import mae_table
from kagglekit.fwi.predictions import MAP_SHAPE, read_maps


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
    folds = [RunFolder(p) for p in run_folders([path], marker=RunFolder.OOF)]
    preds, frames = [], []
    for run in folds:
        p = read_maps(run.oof_path, "out-of-fold predictions")
        if p.ndim != 3 or p.shape[1:] != MAP_SHAPE:
            raise DataError(f"{run.oof_path}: expected (N, 70, 70) velocity maps, found shape {p.shape}")
        f = _read_oof_ids(run.oof_ids_path)
        if len(p) != len(f):
            raise DataError(f"{run.oof_path}: {len(p)} rows but {run.oof_ids_path} has {len(f)}")
        preds.append(np.asarray(p, dtype=np.float32))
        frames.append(f)
    ids = pd.concat(frames, ignore_index=True)
    pred = np.concatenate(preds)
    if ids["sample_id"].duplicated().any():
        raise DataError(f"{path}: the same sample appears in several folds' OOF")
    roots = folds[0].config().data.folders
    data = TrainingData(roots)
    order = np.argsort(ids["sample_id"].to_numpy())
    ids, pred = ids.iloc[order].reset_index(drop=True), pred[order]
    keys = ids["sample_id"].to_numpy()
    ids["fold"] = data.index["fold"].to_numpy()[keys]
    truth = data.velocities(keys)
    name = path.name if len(folds) > 1 or path != folds[0].path else f"{folds[0].config_name}/{folds[0].fold_name}"
    return OOF(name, pred, ids, truth, roots)


def _read_oof_ids(path: Path) -> pd.DataFrame:
    """oof_ids.csv: a sample_id (integer row key) and a family per OOF row."""
    if not path.is_file():
        raise DataError(f"{path}: not found (written with oof.npy by every epoch that improved)")
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable CSV ({type(err).__name__}: {err})") from None
    missing = {"sample_id", "family"} - set(frame.columns)
    if missing or not pd.api.types.is_integer_dtype(frame["sample_id"]):
        raise DataError(f"{path}: expected integer sample_id and family columns, found {list(frame.columns)}")
    return frame
