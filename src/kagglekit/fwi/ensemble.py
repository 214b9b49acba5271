"""Blend several models: mean, median, or OOF-fitted non-negative weights summing to 1.

Weights minimise OOF MAE with scipy's SLSQP (simplex constraint, subgradient of the MAE) on a
random subsample of OOF pixels; rows of the permanent holdout (fold -1) are never used for the
fit and are scored separately, so the blend is judged on data its weights did not see. Test
predictions are `Predictions` files; the blend's rows are sorted by id and it carries the union of
its members' run folders forward (runs.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from kagglekit.errors import UserError
from kagglekit.fwi.constants import VELOCITY_SHAPE, VMAX, VMIN
from kagglekit.fwi.oof import OOF, load_oof
from kagglekit.fwi.predictions import Predictions
from kagglekit.io import atomic_write_text
from kagglekit.report import markdown_table

METHODS = ("mean", "median", "weights")
_CHUNK = 2048  # test maps per blending step (bounded memory: members x chunk maps in float32)


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
    """stack (M, N, 70, 70) -> (N, 70, 70). Not clipped: the CSV writer clips, after checking how much
    lies outside 1500-4500 (a blend of members on another scale must reach that check)."""
    if method == "mean":
        out = stack.mean(axis=0)
    elif method == "median":
        out = np.median(stack, axis=0)
    elif method == "weights":
        out = np.tensordot(weights, stack, axes=1)
    else:
        raise EnsembleError(f"unknown method '{method}'; valid: {', '.join(METHODS)}")
    return out


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


def read_members(pred_paths: list[str | Path]) -> list[Predictions]:
    """The members' test predictions (each `<name>.npy` with `ids.txt` beside it), checked to hold
    the same ids."""
    members = [Predictions.read(p) for p in pred_paths]
    for member in members[1:]:
        if set(member.ids) != set(members[0].ids):
            raise EnsembleError(f"{member.path}: test ids differ from {members[0].path}")
    for member in members:
        _check_scale(member)
    return members


def _check_scale(member: Predictions, maps: int = 64) -> None:
    """Refuse a member plainly not in m/s (e.g. km/s): blended with m/s members it would give
    values that look plausible and are wrong. The median of up to `maps` evenly spaced maps decides."""
    median = member.median_velocity(maps)
    if not VMIN <= median <= VMAX:
        raise EnsembleError(
            f"{member.path}: expected velocities in m/s ({VMIN:.0f}-{VMAX:.0f}), found a median of {median:.4g}"
            f"{' (km/s?)' if median < 10 else ''}; every member must be m/s, like the OOF its weight was fitted on"
        )


def blend_test(members: list[Predictions], blend: Blend) -> Predictions:
    """Apply the blend to test predictions (one per member in the blend's order) -> (N, 70, 70)
    float32 Predictions, rows sorted by id, carrying the members' runs; blended chunk by chunk."""
    if len(members) != len(blend.weights):
        raise EnsembleError(f"{len(members)} prediction files for a blend of {len(blend.weights)} members ({blend.members})")
    ids = sorted(members[0].ids)
    rows = [np.argsort(m.ids) for m in members]  # member row of each sorted id
    out = np.empty((len(ids), *VELOCITY_SHAPE), dtype=np.float32)
    for start in range(0, len(ids), _CHUNK):
        stack = np.stack([np.asarray(m.values[r[start : start + _CHUNK]], dtype=np.float32) for m, r in zip(members, rows)])
        out[start : start + _CHUNK] = combine(stack, blend.method, blend.weights)  # (M, k, 70, 70) -> (k, 70, 70)
    return Predictions(out, ids, None, sorted({run for m in members for run in m.runs}))


def format_table(table: dict[str, dict[str, float]]) -> str:
    """member x (mae = Kaggle metric, mae_all_columns, families) as Markdown."""
    columns = list(next(iter(table.values())).keys())
    return markdown_table(["member", *columns], [(name, *(row[c] for c in columns)) for name, row in table.items()])


def ensemble_to_folder(oof_paths: list[str | Path], pred_paths: list[str | Path], method: str, out: str | Path) -> str:
    """`fwi ensemble`: fit the blend on OOF, write ensemble.json (+ ensemble.npy with ids.txt and
    runs.json when test predictions are given); returns the report printed by the command. Every
    input is read before anything is written."""
    if pred_paths and len(pred_paths) != len(oof_paths):
        raise EnsembleError(f"--preds needs one prediction file per run folder ({len(oof_paths)}), got {len(pred_paths)}")
    members = read_members(pred_paths) if pred_paths else []
    blend, oofs = blend_oof(oof_paths, method)
    out = Path(out)
    lines = [
        f"method {method}, weights " + ", ".join(f"{o.name}={w:.3f}" for o, w in zip(oofs, blend.weights)),
        "OOF MAE (rows used for fitting; mae = Kaggle metric):",
        format_table(blend.table),
    ]
    if blend.holdout_table:
        lines += ["holdout MAE (fold -1, not used for fitting):", format_table(blend.holdout_table)]
    blended = blend_test(members, blend) if members else None
    if blended is not None:
        Predictions.check_folder_ids(out, blended.ids)
    atomic_write_text(out / "ensemble.json", json.dumps(blend.to_json(), indent=1))
    if blended is not None:
        blended.write(out / "ensemble.npy")
        lines.append(f"wrote {out / 'ensemble.npy'} (ids.txt, runs.json beside it)")
    return "\n".join(lines)


def blend_config_predictions(pred_dir: str | Path, configs: list[str], ensemble_json: str | Path | None = None) -> Predictions:
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
    return blend_test(read_members([pred_dir / f"{name}.npy" for name in names]), blend)
