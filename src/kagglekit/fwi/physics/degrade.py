"""Realistic refinement starts: the true map degraded the way a network's prediction is wrong.

Recipe, per map (seeded): a Gaussian blur of `blur` pixels (edge mode "nearest"; halved until the
blur alone stays below the target), then a smooth random error field (white noise through a
Gaussian of `field` pixels, unit std) scaled by bisection so that the map's MAE is `target` m/s;
clipped to 1500-4500 m/s.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from kagglekit.fwi.constants import VMAX, VMIN


def degrade_map(truth: np.ndarray, target: float, rng: np.random.Generator, blur: float = 1.5, field: float = 8.0) -> np.ndarray:
    """(70, 70) m/s -> (70, 70) float32 m/s at MAE `target` from it."""
    truth = truth.astype(np.float64)
    sigma = blur
    blurred = gaussian_filter(truth, sigma, mode="nearest")
    while np.abs(blurred - truth).mean() > 0.8 * target and sigma > 0.1:
        sigma /= 2
        blurred = gaussian_filter(truth, sigma, mode="nearest")
    noise = gaussian_filter(rng.standard_normal(truth.shape), field, mode="wrap")
    noise /= noise.std()

    def mae(amplitude: float) -> float:
        return float(np.abs(np.clip(blurred + amplitude * noise, VMIN, VMAX) - truth).mean())

    low, high = 0.0, 4 * target
    while mae(high) < target and high < 1e4:
        high *= 2
    for _ in range(50):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if mae(mid) < target else (low, mid)
    return np.clip(blurred + 0.5 * (low + high) * noise, VMIN, VMAX).astype(np.float32)


def degrade(truth: np.ndarray, target: float = 45.0, seed: int = 0, blur: float = 1.5, field: float = 8.0) -> np.ndarray:
    """(N, 70, 70) -> (N, 70, 70) float32 starts, map i at MAE `target` (one seeded stream)."""
    rng = np.random.default_rng(seed)
    return np.stack([degrade_map(t, target, rng, blur, field) for t in truth])
