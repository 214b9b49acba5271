"""Fold assignment and selection shared by every task.

Fold ids: 0..k-1 for cross-validation, HOLDOUT (-1) for a permanent holdout that no fold ever
trains on, and EXCLUDED (-2) for rows that are in no fold at all (e.g. an official test split).
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from kagglekit.errors import UserError

HOLDOUT = -1
EXCLUDED = -2


def assign_folds(
    labels: np.ndarray | list,
    n_folds: int = 5,
    seed: int = 0,
    holdout: float = 0.0,
    groups: np.ndarray | list | None = None,
) -> np.ndarray:
    """Fold id per row, stratified by `labels` (a family, a class).

    The holdout takes round(holdout * n) rows of every label (shuffled by `seed`): an exact share
    per label, which sklearn's splitters do not promise. The rest is dealt by sklearn's
    `StratifiedKFold` (shuffled, seeded), or `StratifiedGroupKFold` when `groups` keeps related
    rows (e.g. a sample and its augmented copies) in one fold. When no label has as many rows as
    there are folds (tiny sets), stratifying is impossible and the rows are dealt unstratified.
    """
    if n_folds < 2:
        raise UserError(f"n_folds must be >= 2, got {n_folds}")
    if not 0.0 <= holdout < 1.0:
        raise UserError(f"holdout must be in [0, 1), got {holdout}")
    labels = np.asarray(labels).astype(str)
    folds = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    pool = []
    for label in sorted(set(labels.tolist())):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_hold = int(round(holdout * len(members)))
        folds[members[:n_hold]] = HOLDOUT
        pool.append(members[n_hold:])
    rest = np.sort(np.concatenate(pool)) if pool else np.zeros(0, dtype=np.int64)
    if len(rest) < n_folds:
        raise UserError(f"{len(rest)} rows outside the holdout cannot fill {n_folds} folds")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        stratify = np.unique(labels[rest], return_counts=True)[1].max() >= n_folds
        if groups is None:
            splitter = (
                StratifiedKFold(n_folds, shuffle=True, random_state=seed)
                if stratify
                else KFold(n_folds, shuffle=True, random_state=seed)
            )
            splits = splitter.split(rest, labels[rest])
        elif stratify:
            splits = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(
                rest, labels[rest], np.asarray(groups)[rest]
            )
        else:
            splits = GroupKFold(n_folds).split(rest, labels[rest], np.asarray(groups)[rest])
        for k, (_, valid) in enumerate(splits):
            folds[rest[valid]] = k
    return folds


def split_for_fold(folds: np.ndarray, fold: int, where: str = "folds") -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) for `fold`; fold -1 trains on every fold, validates on the holdout."""
    folds = np.asarray(folds)
    valid_folds = sorted(set(folds[folds >= 0].tolist()))
    if fold == HOLDOUT:
        return np.flatnonzero(folds >= 0), np.flatnonzero(folds == HOLDOUT)
    if fold not in valid_folds:
        raise UserError(f"{where}: fold {fold} not found; folds are {valid_folds} (or -1: all folds, holdout validation)")
    return np.flatnonzero((folds >= 0) & (folds != fold)), np.flatnonzero(folds == fold)


def fold_signature(ids: np.ndarray | list, folds: np.ndarray) -> str:
    """sha256 of the (id, fold) pairs: a run records it and refuses to resume on other folds."""
    digest = hashlib.sha256()
    digest.update(np.asarray([str(i) for i in ids]).astype("U").tobytes())
    digest.update(np.asarray(folds, dtype=np.int64).tobytes())
    return digest.hexdigest()
