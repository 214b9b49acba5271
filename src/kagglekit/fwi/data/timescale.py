"""Velocity x a <=> time x 1/a: an augmentation that needs no simulation (14th and 20th place).

In the constant-density acoustic wave equation, p(x, a t) solves the model a v with the source
wavelet squeezed by the same factor. So a record of v, resampled at t0 + a (t - t0) with t0 the
wavelet's peak, is nearly the record of a v: the arrivals line up, only the wavelet is a times
narrower than the data's 15 Hz (tests/test_augment.py measures how near).
"""

from __future__ import annotations

import torch

from kagglekit.fwi.constants import RECORDED_PEAK_SAMPLE, VMAX, VMIN


def scale_range(velocity: torch.Tensor, low: float, high: float) -> tuple[float, float]:
    """The factors within [low, high] that keep the map inside VMIN-VMAX (always holds 1)."""
    vmin, vmax = float(velocity.min()), float(velocity.max())
    return max(low, VMIN / vmin), min(high, VMAX / vmax)


def time_scale(seismic: torch.Tensor, velocity: torch.Tensor, a: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., T, 70) seismic and (70, 70) velocity -> the pair for velocity x a (same shapes and
    dtypes): each trace resampled at t0 + a (t - t0), linearly; samples past the record are 0."""
    n_time = seismic.shape[-2]
    t = torch.arange(n_time, dtype=torch.float32)
    src = RECORDED_PEAK_SAMPLE + a * (t - RECORDED_PEAK_SAMPLE)  # (T,) where each output sample reads
    lo = src.floor().long()
    w = (src - lo).view(-1, 1)  # (T, 1)
    inside = ((lo >= 0) & (lo + 1 <= n_time - 1)).view(-1, 1)
    lo_c, hi_c = lo.clamp(0, n_time - 1), (lo + 1).clamp(0, n_time - 1)
    x = seismic.float()
    out = (x[..., lo_c, :] * (1 - w) + x[..., hi_c, :] * w) * inside
    return out.to(seismic.dtype), (velocity * a).to(velocity.dtype)
