"""Blend several models: mean, median, or OOF-fitted non-negative weights summing to 1.

Weights minimise OOF MAE with scipy's SLSQP (simplex constraint, subgradient of the MAE) on a
random subsample of OOF pixels; rows of the permanent holdout (fold -1) are never used for the
fit and are scored separately, so the blend is judged on data its weights did not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.oof import OOF, load_oof, mae_table
from kagglekit.fwi.predict import read_ids


class EnsembleError(ValueError):
    pass


@dataclass
class Blend:
    method: str
    weights: np.ndarray  # (M,) (1/M each for mean; nan for median)
    table: dict[str, dict[str, float]]  # member or "blend" -> family -> MAE (fit rows)
    holdout_table: dict[str, dict[str, float]]  # the same on holdout rows (empty without holdout)


def align(oofs: list[OOF]) -> None:
    """All members must cover exactly the same samples (already sorted by sample_id)."""
    ref = oofs[0].ids["sample_id"].to_numpy()
    for oof in oofs[1:]:
        ids = oof.ids["sample_id"].to_numpy()
        if len(ids) != len(ref) or not np.array_equal(ids, ref):
            only_a = np.setdiff1d(ref, ids)[:5].tolist()
            only_b = np.setdiff1d(ids, ref)[:5].tolist()
            raise EnsembleError(f"OOF id sets differ between {oofs[0].name} and {oof.name}: only in first {only_a}, only in second {only_b}")


def combine(stack: np.ndarray, method: str, weights: np.ndarray | None = None) -> np.ndarray:
    """stack (M, N, 70, 70) -> (N, 70, 70), clipped to 1500-4500."""
    if method == "mean":
        out = stack.mean(axis=0)
    elif method == "median":
        out = np.median(stack, axis=0)
    elif method == "weights":
        out = np.tensordot(weights, stack, axes=1)
    else:
        raise EnsembleError(f"unknown method '{method}'; valid: mean, median, weights")
    return np.clip(out, VMIN, VMAX)


def fit_weights(stack: np.ndarray, truth: np.ndarray, n_pixels: int = 400_000, seed: int = 0) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise MAE of the weighted blend (SLSQP)."""
    m = stack.shape[0]
    flat = stack.reshape(m, -1)
    y = truth.reshape(-1)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(y), size=min(n_pixels, len(y)), replace=False)
    p, t = flat[:, pick].astype(np.float64), y[pick].astype(np.float64)

    def loss(w):
        return np.abs(w @ p - t).mean()

    def grad(w):
        return p @ np.sign(w @ p - t) / len(t)

    start = np.full(m, 1.0 / m)
    result = minimize(loss, start, jac=grad, method="SLSQP", bounds=[(0.0, 1.0)] * m,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}], options={"maxiter": 200})
    w = np.clip(result.x, 0, None)
    w = w / w.sum()
    return w if loss(w) <= loss(start) else start


def blend_oof(paths: list[str | Path], method: str) -> tuple[Blend, list[OOF]]:
    oofs = [load_oof(p) for p in paths]
    align(oofs)
    stack = np.stack([o.predictions for o in oofs])  # (M, N, 70, 70)
    folds = oofs[0].ids["fold"].to_numpy()
    fit_rows, hold_rows = folds >= 0, folds == -1
    if method == "weights":
        weights = fit_weights(stack[:, fit_rows], oofs[0].truth[fit_rows])
    elif method == "mean":
        weights = np.full(len(oofs), 1.0 / len(oofs))
    else:
        weights = np.full(len(oofs), np.nan)
    blended = combine(stack, method, weights)
    table = {o.name: mae_table(o, mask=fit_rows) for o in oofs}
    table["blend"] = mae_table(oofs[0], blended, fit_rows)
    holdout = {}
    if hold_rows.any():
        holdout = {o.name: mae_table(o, mask=hold_rows) for o in oofs}
        holdout["blend"] = mae_table(oofs[0], blended, hold_rows)
    return Blend(method, weights, table, holdout), oofs


def blend_test(pred_paths: list[str | Path], blend: Blend) -> tuple[np.ndarray, list[str]]:
    """Apply the blend to test predictions (each `<name>.npy` with `ids.txt` beside it)."""
    arrays, ref_ids = [], None
    for path in map(Path, pred_paths):
        ids = read_ids(path.parent / "ids.txt")
        arr = np.load(path, mmap_mode="r")
        if len(arr) != len(ids):
            raise EnsembleError(f"{path}: {len(arr)} predictions but {len(ids)} ids in {path.parent / 'ids.txt'}")
        if ref_ids is None:
            ref_ids = ids
        elif set(ids) != set(ref_ids):
            raise EnsembleError(f"{path}: test ids differ from {pred_paths[0]}")
        order = np.argsort(ids)
        arrays.append(np.asarray(arr, dtype=np.float32)[order])
    ids_sorted = sorted(ref_ids)
    return combine(np.stack(arrays), blend.method, blend.weights), ids_sorted


def format_table(table: dict[str, dict[str, float]]) -> str:
    families = list(next(iter(table.values())).keys())
    lines = ["| member | " + " | ".join(families) + " |", "|---|" + "---:|" * len(families)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[f]:.1f}" for f in families) + " |")
    return "\n".join(lines)
