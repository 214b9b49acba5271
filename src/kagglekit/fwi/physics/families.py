"""Seeded velocity-map generators that look like the ten OpenFWI families.

They are look-alikes built from the published descriptions and example images, not copies of
the OpenFWI generator. Every map is (70, 70) float32 in m/s, within 1500-4500.

- FlatVel:   horizontal layers.            A: 2-4 layers, velocity increasing with depth.
                                           B: 4-8 layers, velocities in any order (low-velocity
                                              layers under fast ones), larger contrasts.
- CurveVel:  layers whose interfaces follow one smooth sinusoid-like curve.
                                           A: 2-4 monotone layers, gentle curvature.
                                           B: 4-8 unordered layers, stronger curvature.
- FlatFault: FlatVel layers cut by one straight fault; one side is thrown up or down.
                                           A: 2-4 monotone layers, moderate throw.
                                           B: 4-8 unordered layers, larger throw.
- CurveFault: CurveVel layers cut by one fault (A/B as for CurveVel, throw as FlatFault).
- Style:     smooth random texture over a depth trend (the OpenFWI Style set is style
             transfer of natural images).   A: broad, smooth blobs, moderate contrast.
                                           B: finer, sharper texture, higher contrast.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

from kagglekit.fwi.constants import FAMILIES, GRID, VMAX, VMIN

_ROWS = np.arange(GRID, dtype=np.float64)[:, None]  # (70, 1) depth index
_COLS = np.arange(GRID, dtype=np.float64)[None, :]  # (1, 70) x index


def _layer_velocities(rng: np.random.Generator, n_layers: int, monotone: bool) -> np.ndarray:
    if monotone:
        v = np.sort(rng.uniform(VMIN, VMAX, n_layers))
        v[0] = min(v[0], rng.uniform(VMIN, 3000.0))  # slow shallow layer, as in the data
        return np.sort(v)
    return rng.uniform(VMIN, VMAX, n_layers)


def _interfaces_flat(rng: np.random.Generator, n_layers: int) -> np.ndarray:
    """(n_layers - 1, 70) interface depths (rows), constant across x."""
    depths = np.sort(rng.uniform(6, GRID - 4, n_layers - 1))
    return np.repeat(depths[:, None], GRID, axis=1)


def _interfaces_curved(rng: np.random.Generator, n_layers: int, strength: float) -> np.ndarray:
    """Interfaces sharing one smooth curve (sum of two random sinusoids) shifted in depth."""
    flat = _interfaces_flat(rng, n_layers)
    curve = np.zeros(GRID)
    for _ in range(2):
        wavelength = rng.uniform(40, 160)
        phase = rng.uniform(0, 2 * np.pi)
        curve += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * _COLS[0] / wavelength + phase)
    curve *= strength / max(np.abs(curve).max(), 1e-6)
    return flat + curve[None, :]


def _fill_layers(interfaces: np.ndarray, velocities: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Velocity of the layer each (row, col) falls into; `rows` may be shifted per pixel."""
    # (K, 1, 70) vs (70, 70) -> number of interfaces above each pixel -> layer index
    layer = (rows[None, :, :] >= interfaces[:, None, :]).sum(axis=0)
    return velocities[layer]


def _fault_rows(rng: np.random.Generator, max_throw: float) -> np.ndarray:
    """(70, 70) effective depth rows: pixels on one side of a straight fault are shifted."""
    x0 = rng.uniform(15, 55)
    dip = np.deg2rad(rng.uniform(45, 80)) * rng.choice([-1, 1])
    # signed distance-like side test for the line through (row 0, x0) with the given dip
    side = (_COLS - x0) * np.sin(dip) - _ROWS * np.cos(dip) > 0
    throw = rng.uniform(0.4, 1.0) * max_throw * rng.choice([-1, 1])
    return np.broadcast_to(_ROWS, (GRID, GRID)) - throw * side


def _layered(rng, few: bool, curved: bool, fault: bool) -> np.ndarray:
    n_layers = int(rng.integers(2, 5)) if few else int(rng.integers(4, 9))
    velocities = _layer_velocities(rng, n_layers, monotone=few)
    if curved:
        interfaces = _interfaces_curved(rng, n_layers, strength=rng.uniform(2, 6) if few else rng.uniform(5, 12))
    else:
        interfaces = _interfaces_flat(rng, n_layers)
    rows = _fault_rows(rng, max_throw=12 if few else 22) if fault else np.broadcast_to(_ROWS, (GRID, GRID))
    return _fill_layers(interfaces, velocities, rows)


def _style(rng: np.random.Generator, sigma: float, contrast: float) -> np.ndarray:
    noise = gaussian_filter(rng.standard_normal((GRID + 20, GRID + 20)), sigma, mode="reflect")[10:-10, 10:-10]
    noise = (noise - noise.mean()) / (noise.std() + 1e-9)
    top, bottom = np.sort(rng.uniform(VMIN, VMAX, 2))
    trend = top + (bottom - top) * (_ROWS / (GRID - 1))
    return trend + contrast * noise


_GENERATORS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "FlatVel_A": lambda r: _layered(r, few=True, curved=False, fault=False),
    "FlatVel_B": lambda r: _layered(r, few=False, curved=False, fault=False),
    "CurveVel_A": lambda r: _layered(r, few=True, curved=True, fault=False),
    "CurveVel_B": lambda r: _layered(r, few=False, curved=True, fault=False),
    "FlatFault_A": lambda r: _layered(r, few=True, curved=False, fault=True),
    "FlatFault_B": lambda r: _layered(r, few=False, curved=False, fault=True),
    "CurveFault_A": lambda r: _layered(r, few=True, curved=True, fault=True),
    "CurveFault_B": lambda r: _layered(r, few=False, curved=True, fault=True),
    "Style_A": lambda r: _style(r, sigma=r.uniform(5, 8), contrast=r.uniform(150, 350)),
    "Style_B": lambda r: _style(r, sigma=r.uniform(1.5, 3), contrast=r.uniform(300, 600)),
}
assert tuple(_GENERATORS) == FAMILIES


def generate_family(family: str, n: int, seed: int | np.random.Generator) -> np.ndarray:
    """n velocity maps of one family: (n, 70, 70) float32 in [1500, 4500], reproducible by seed."""
    if family not in _GENERATORS:
        raise KeyError(f"unknown velocity family '{family}'; valid: {', '.join(FAMILIES)}")
    rng = np.random.default_rng(seed)
    maps = np.stack([_GENERATORS[family](rng) for _ in range(n)]) if n else np.zeros((0, GRID, GRID))
    return np.clip(maps, VMIN, VMAX).astype(np.float32)
