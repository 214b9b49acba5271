"""Our own implementation of the OpenFWI finite-difference generator, used as the reference.

Scheme: p^{n+1} = (2 - kappa dt) p^n - (1 - kappa dt) p^{n-1} + (v dt / dx)^2 L4[p^n]
        then p^{n+1}[source] += (v dt)^2 s^n, record p^{n+1} at the receivers.
L4 = 4th-order 5-point-per-axis Laplacian (-5/2, 4/3, -1/12) with periodic wrap, damping border of 120 cells with
kappa(d) = 3 vmin ln(1e7) / (2 a) * (d / a)^2, a = (nbc - 1) dx, velocity edge-padded.
Written in torch (batched over shots) so that it runs in seconds on CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kagglekit.fwi.constants import DT, DX, N_RECEIVERS, RECEIVER_DEPTH_ROW, SOURCE_COLUMNS, SOURCE_DEPTH_ROW
from kagglekit.fwi.physics import ricker_openfwi

NBC = 120


def damping_profile(nz: int, nx: int, vmin: float, nbc: int = NBC, dx: float = DX, extra: int = 0) -> np.ndarray:
    """OpenFWI damping: kappa (d / a)^2 over nbc cells; `extra` cells continue the same ramp."""
    a = (nbc - 1) * dx
    kappa = 3.0 * vmin * math.log(1e7) / (2.0 * a)
    nbc = nbc + extra
    ramp = kappa * ((np.arange(nbc) * dx / a) ** 2)  # 0 at the model edge, max at the outer edge
    damp = np.zeros((nz + 2 * nbc, nx + 2 * nbc))
    damp[:, :nbc] = ramp[::-1]
    damp[:, nx + nbc :] = ramp
    damp[:nbc, nbc : nbc + nx] = ramp[::-1, None]
    damp[nz + nbc :, nbc : nbc + nx] = ramp[:, None]
    return damp


def reference_simulate(velocity: np.ndarray, nt: int = 1000, nbc: int = NBC, periodic: bool = True, extra: int = 0) -> np.ndarray:
    """(70, 70) m/s -> (5, nt, 70), float64 via torch on CPU.

    extra > 0 widens the border beyond the OpenFWI 120 cells (same ramp, continued) so that
    no wave that crossed the border comes back within the record: the scheme's interior
    physics without its finite-border leak.
    """
    vel = np.pad(np.asarray(velocity, dtype=np.float64), nbc + extra, mode="edge")
    nz, nx = vel.shape
    damp = damping_profile(velocity.shape[0], velocity.shape[1], float(velocity.min()), nbc, extra=extra)
    nbc = nbc + extra
    v = torch.from_numpy(vel)
    alpha = (v * DT / DX) ** 2
    kdt = torch.from_numpy(damp) * DT
    c0, c1, c2 = -2.5, 4.0 / 3.0, -1.0 / 12.0
    temp1 = 2.0 + 2.0 * c0 * alpha - kdt
    temp2 = 1.0 - kdt
    beta = (v * DT) ** 2
    wavelet = torch.from_numpy(ricker_openfwi(nt))
    n_shots = len(SOURCE_COLUMNS)
    p_prev = torch.zeros(n_shots, nz, nx, dtype=torch.float64)
    p_cur = torch.zeros_like(p_prev)
    shots = torch.arange(n_shots)
    sz = SOURCE_DEPTH_ROW + nbc
    sx = torch.tensor(SOURCE_COLUMNS) + nbc
    rz = RECEIVER_DEPTH_ROW + nbc
    rx = torch.arange(N_RECEIVERS) + nbc
    out = torch.zeros(n_shots, nt, N_RECEIVERS, dtype=torch.float64)
    for it in range(nt):
        if periodic:
            # as the OpenFWI Python code (np.roll): a wave leaving one damping border re-enters
            # through the opposite one
            lap = c1 * sum(torch.roll(p_cur, s, dims=d) for s in (1, -1) for d in (1, 2)) + c2 * sum(
                torch.roll(p_cur, s, dims=d) for s in (2, -2) for d in (1, 2)
            )
        else:  # zero pressure outside the padded grid (a reflecting outer edge)
            lap = torch.zeros_like(p_cur)
            lap[:, 2:-2, 2:-2] = c1 * (
                p_cur[:, 1:-3, 2:-2] + p_cur[:, 3:-1, 2:-2] + p_cur[:, 2:-2, 1:-3] + p_cur[:, 2:-2, 3:-1]
            ) + c2 * (p_cur[:, :-4, 2:-2] + p_cur[:, 4:, 2:-2] + p_cur[:, 2:-2, :-4] + p_cur[:, 2:-2, 4:])
        p_next = temp1 * p_cur - temp2 * p_prev + alpha * lap
        p_next[shots, sz, sx] += beta[sz, sx] * wavelet[it]
        out[:, it, :] = p_next[:, rz, rx]
        p_prev, p_cur = p_cur, p_next
    return out.numpy()
