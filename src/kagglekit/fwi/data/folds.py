"""Deterministic k-fold assignment stratified by family, with an optional permanent holdout."""

from __future__ import annotations

import numpy as np

HOLDOUT = -1


def assign_folds(families: np.ndarray | list[str], n_folds: int = 5, seed: int = 0, holdout: float = 0.0) -> np.ndarray:
    """Fold id per sample: 0..n_folds-1, or -1 for the holdout fraction of every family.

    Within each family the samples are shuffled by `seed`, the first round(holdout * n) go to
    the holdout, the rest are dealt to the folds in turn (continuing the rotation across
    families, so fold sizes differ by at most one overall).
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    families = np.asarray(families)
    folds = np.empty(len(families), dtype=np.int64)
    rng = np.random.default_rng(seed)
    offset = 0
    for family in sorted(set(families.tolist())):
        members = rng.permutation(np.flatnonzero(families == family))
        n_hold = int(round(holdout * len(members)))
        folds[members[:n_hold]] = HOLDOUT
        rest = members[n_hold:]
        folds[rest] = (np.arange(len(rest)) + offset) % n_folds
        offset = (offset + len(rest)) % n_folds
    return folds
