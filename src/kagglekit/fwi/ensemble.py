"""Blend several models: mean, median, or OOF-fitted non-negative weights summing to 1.

Weights minimise OOF MAE with scipy's SLSQP (simplex constraint, subgradient of the MAE) on a
random subsample of OOF pixels; rows of the permanent holdout (fold -1) are never used for the
fit and are scored separately, so the blend is judged on data its weights did not see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from kagglekit.errors import UserError
from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.oof import OOF, load_oof
from kagglekit.io import atomic_save_npy, atomic_write_text, read_ids, write_ids
from kagglekit.report import markdown_table

METHODS = ("mean", "median", "weights")


class EnsembleError(UserError):
    pass


@dataclass
class Blend:
    method: str
    weights: np.ndarray  # (M,) (1/M each for mean; nan for median)
    members: list[str]
    table: dict[str, dict[str, float]]  # member or "blend" -> column -> MAE (fit rows)
    holdout_table: dict[str, dict[str, float]]  # the same on holdout rows (empty without holdout)

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "members": self.members,
            "weights": [float(w) for w in self.weights],
            "oof": self.table,
            "holdout": self.holdout_table,
        }

    @classmethod
    def from_json(cls, path: str | Path) -> Blend:
        """A blend saved by `fwi ensemble` (ensemble.json): how to combine the same members' test predictions."""
        path = Path(path)
        try:
            report = json.loads(path.read_text())
            return cls(
                report["method"],
                np.asarray(report["weights"], dtype=np.float64),
                list(report["members"]),
                report.get("oof", {}),
                report.get("holdout", {}),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise EnsembleError(f"{path}: not an ensemble.json written by `fwi ensemble` ({type(exc).__name__}: {exc})") from exc


def align(oofs: list[OOF]) -> None:
    """All members must cover exactly the same samples (already sorted by sample_id)."""
    ref = oofs[0].ids["sample_id"].to_numpy()
    for oof in oofs[1:]:
        ids = oof.ids["sample_id"].to_numpy()
        if len(ids) != len(ref) or not np.array_equal(ids, ref):
            only_a = np.setdiff1d(ref, ids)[:5].tolist()
            only_b = np.setdiff1d(ids, ref)[:5].tolist()
            raise EnsembleError(
                f"OOF id sets differ between {oofs[0].name} and {oof.name}: only in first {only_a}, only in second {only_b}"
            )


def combine(stack: np.ndarray, method: str, weights: np.ndarray | None = None) -> np.ndarray:
    """stack (M, N, 70, 70) -> (N, 70, 70), clipped to 1500-4500."""
    if method == "mean":
        out = stack.mean(axis=0)
    elif method == "median":
        out = np.median(stack, axis=0)
    elif method == "weights":
        out = np.tensordot(weights, stack, axes=1)
    else:
        raise EnsembleError(f"unknown method '{method}'; valid: {', '.join(METHODS)}")
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
    result = minimize(
        loss,
        start,
        jac=grad,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"maxiter": 200},
    )
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
    table = {o.name: o.table(mask=fit_rows) for o in oofs}
    table["blend"] = oofs[0].table(blended, fit_rows)
    holdout = {}
    if hold_rows.any():
        holdout = {o.name: o.table(mask=hold_rows) for o in oofs}
        holdout["blend"] = oofs[0].table(blended, hold_rows)
    return Blend(method, weights, [o.name for o in oofs], table, holdout), oofs


def blend_test(pred_paths: list[str | Path], blend: Blend) -> tuple[np.ndarray, list[str]]:
    """Apply the blend to test predictions (each `<name>.npy` with `ids.txt` beside it, one per
    member in the blend's order); rows come back sorted by id."""
    if len(pred_paths) != len(blend.weights):
        raise EnsembleError(f"{len(pred_paths)} prediction files for a blend of {len(blend.weights)} members ({blend.members})")
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
    """member x (mae = Kaggle metric, mae_all_columns, families) as Markdown."""
    columns = list(next(iter(table.values())).keys())
    return markdown_table(["member", *columns], [(name, *(row[c] for c in columns)) for name, row in table.items()])


def ensemble_to_folder(oof_paths: list[str | Path], pred_paths: list[str | Path], method: str, out: str | Path) -> str:
    """`fwi ensemble`: fit the blend on OOF, write ensemble.json (+ ensemble.npy and ids.txt when
    test predictions are given); returns the report printed by the command."""
    if pred_paths and len(pred_paths) != len(oof_paths):
        raise EnsembleError(f"--preds needs one prediction file per --oof member ({len(oof_paths)}), got {len(pred_paths)}")
    blend, oofs = blend_oof(oof_paths, method)
    out = Path(out)
    lines = [
        f"method {method}, weights " + ", ".join(f"{o.name}={w:.3f}" for o, w in zip(oofs, blend.weights)),
        "OOF MAE (rows used for fitting; mae = Kaggle metric):",
        format_table(blend.table),
    ]
    if blend.holdout_table:
        lines += ["holdout MAE (fold -1, not used for fitting):", format_table(blend.holdout_table)]
    atomic_write_text(out / "ensemble.json", json.dumps(blend.to_json(), indent=1))
    if pred_paths:
        pred, ids = blend_test(pred_paths, blend)
        atomic_save_npy(out / "ensemble.npy", pred.astype(np.float16))
        write_ids(out / "ids.txt", ids)
        lines.append(f"wrote {out / 'ensemble.npy'} and {out / 'ids.txt'}")
    return "\n".join(lines)


def blend_config_predictions(
    pred_dir: str | Path, configs: list[str], ensemble_json: str | Path | None = None
) -> tuple[np.ndarray, list[str]]:
    """Blend the fold-mean predictions `<pred_dir>/<config>.npy` of `configs`: with the blend of
    `ensemble_json` (its members are config folders) or, without one, their plain mean."""
    pred_dir = Path(pred_dir)
    if ensemble_json is not None:
        blend = Blend.from_json(ensemble_json)
        names = [m.split("/")[0] for m in blend.members]
        missing = sorted(set(names) - set(configs))
        if missing:
            raise EnsembleError(f"{ensemble_json}: members {missing} have no predictions in {pred_dir} (have {configs})")
    else:
        names = list(configs)
        blend = Blend("mean", np.full(len(names), 1.0 / len(names)), names, {}, {})
    return blend_test([pred_dir / f"{name}.npy" for name in names], blend)
