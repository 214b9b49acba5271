"""Temperature scaling (fitted on validation logits) and expected calibration error."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return float(F.cross_entropy(logits.float() / temperature, labels))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """T > 0 minimising the NLL of softmax(logits / T) (LBFGS on log T)."""
    logits, labels = logits.float().detach(), labels.long()
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def calibration_report(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    t = fit_temperature(logits, labels)
    before = torch.softmax(logits.float(), 1).numpy()
    after = torch.softmax(logits.float() / t, 1).numpy()
    y = labels.numpy()
    return {
        "temperature": t,
        "nll_before": nll(logits, labels),
        "nll_after": nll(logits, labels, t),
        "ece_before": ece(before, y),
        "ece_after": ece(after, y),
    }
