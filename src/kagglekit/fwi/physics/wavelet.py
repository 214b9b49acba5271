"""The OpenFWI source wavelet: a 15 Hz Ricker of 2*floor(1.1/(f dt))+1 samples starting at sample 0.
Shared by both forward models (simulate.py, openfwi.py)."""

from __future__ import annotations

import math

import numpy as np

from kagglekit.fwi.constants import DT, N_TIME, RICKER_FREQ


def ricker_centre(freq: float = RICKER_FREQ, dt: float = DT) -> int:
    """0-based sample of the OpenFWI Ricker's peak: the centre of its 2*floor(1.1/(f dt))+1 samples."""
    return math.floor(2.2 / freq / dt / 2)  # 73 at 15 Hz, 1 ms


def recorded_peak_sample(freq: float = RICKER_FREQ, dt: float = DT) -> int:
    """Sample of the wavelet peak in `simulate` output (and the competition data): sample 0 is dropped."""
    return ricker_centre(freq, dt) - 1


def ricker_openfwi(nt: int = N_TIME, freq: float = RICKER_FREQ, dt: float = DT) -> np.ndarray:
    """The OpenFWI Ricker wavelet: odd length 2*floor(1.1/(f dt))+1, starting at sample 0."""
    centre = ricker_centre(freq, dt)
    n_wavelet = 2 * centre + 1  # 147 at 15 Hz, 1 ms
    k = np.arange(1, n_wavelet + 1)
    alpha = (centre - k + 1) * freq * dt * np.pi
    wavelet = (1.0 - 2.0 * alpha**2) * np.exp(-(alpha**2))
    out = np.zeros(nt, dtype=np.float64)
    out[: min(nt, n_wavelet)] = wavelet[:nt]
    return out
