"""The competition metric: MAE (m/s) over the 35 scored (odd) columns x_1, x_3, ..., x_69.

Every FWI score kagglekit reports (training logs, metrics.jsonl, `fwi cv`, `fwi ensemble`,
`fwi score`) comes from here. The MAE over all 70 columns is reported beside it as
`mae_all_columns`; it differs by noise only, but it is not what Kaggle scores.
"""

from __future__ import annotations

import numpy as np

from kagglekit.fwi.constants import GRID, SCORED_COLUMNS


def sample_mae(pred: np.ndarray, truth: np.ndarray, scored_only: bool = True) -> np.ndarray:
    """(N, 70, 70) x 2 -> (N,) MAE per sample, over the scored columns (or all of them)."""
    pred, truth = np.asarray(pred, dtype=np.float32), np.asarray(truth, dtype=np.float32)
    if pred.shape != truth.shape or pred.shape[-2:] != (GRID, GRID):
        raise ValueError(f"predictions {pred.shape} and truth {truth.shape} must both be (N, 70, 70)")
    if scored_only:
        pred, truth = pred[..., SCORED_COLUMNS], truth[..., SCORED_COLUMNS]
    return np.abs(pred - truth).mean(axis=(-2, -1))


def mae_table(pred: np.ndarray, truth: np.ndarray, families: np.ndarray | list[str]) -> dict[str, float]:
    """{"mae": Kaggle metric, "mae_all_columns": ..., <family>: Kaggle metric of that family, ...}."""
    err = sample_mae(pred, truth)
    families = np.asarray(families)
    out = {
        "mae": float(err.mean()) if len(err) else float("nan"),
        "mae_all_columns": float(sample_mae(pred, truth, scored_only=False).mean()) if len(err) else float("nan"),
    }
    for name in sorted(set(families.tolist())):
        out[name] = float(err[families == name].mean())
    return out
