"""Classification metrics from logits or probabilities: the one definition every report uses."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, f1_score


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """accuracy, macro-F1, balanced accuracy and NLL of (N, C) probabilities against (N,) labels."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    pred = probs.argmax(1)
    return {
        "accuracy": float((pred == labels).mean()),
        "macro_f1": float(f1_score(labels, pred, average="macro")),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
        "nll": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()),
    }
