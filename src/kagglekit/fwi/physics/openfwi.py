"""The OpenFWI finite-difference generator itself, batched in torch (float32 or float64).

Scheme (as the OpenFWI code): p^{n+1} = (2 - kappa dt) p^n - (1 - kappa dt) p^{n-1} + (v dt / dx)^2 L4[p^n],
then p^{n+1}[source] += (v dt)^2 s^n and the receivers record p^{n+1}. L4 is the 4th-order
5-point-per-axis Laplacian (-5/2, 4/3, -1/12). The model is edge-padded by a damping border of
120 cells with kappa(d) = 3 vmin ln(1e7) / (2 a) (d / a)^2, a = (nbc - 1) dx, so the border
depends on each model's minimum velocity. The Laplacian wraps around the padded grid (np.roll in
the original): what crosses one border late in the record re-enters through the opposite one.
That late leak is part of the released data; deepwave's PML does not reproduce it.

Differentiable through autograd, but storing every step costs nt x 5 x 310^2 values per model:
use it to make data and to check the deepwave path, and deepwave to optimise velocities.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from kagglekit.fwi.constants import DT, DX, N_RECEIVERS, N_TIME, RECEIVER_DEPTH_ROW, SOURCE_COLUMNS, SOURCE_DEPTH_ROW
from kagglekit.fwi.physics.wavelet import ricker_openfwi

NBC = 120  # damping cells on every side
C0, C1, C2 = -2.5, 4.0 / 3.0, -1.0 / 12.0  # 4th-order second-derivative stencil


def damping_ramp(nbc: int = NBC, extra: int = 0, dx: float = DX) -> np.ndarray:
    """kappa / vmin at 0..nbc+extra-1 cells from the model edge (the ramp continues past nbc)."""
    a = (nbc - 1) * dx
    return 3.0 * math.log(1e7) / (2.0 * a) * ((np.arange(nbc + extra) * dx / a) ** 2)


def damping_profile(nz: int, nx: int, nbc: int = NBC, extra: int = 0) -> np.ndarray:
    """(nz + 2w, nx + 2w) damping of a model with vmin = 1 m/s, w = nbc + extra (scale by vmin)."""
    ramp = damping_ramp(nbc, extra)
    w = len(ramp)
    damp = np.zeros((nz + 2 * w, nx + 2 * w))
    damp[:, :w] = ramp[::-1]
    damp[:, nx + w :] = ramp
    damp[:w, w : w + nx] = ramp[::-1, None]
    damp[nz + w :, w : w + nx] = ramp[:, None]
    return damp


def _laplacian_off_centre(p: torch.Tensor, periodic: bool) -> torch.Tensor:
    """The off-centre part of L4 over the last two axes of p (N, C, H, W); the centre term is in temp1."""
    pp = F.pad(p, (2, 2, 2, 2), mode="circular" if periodic else "constant")
    near = pp[..., 1:-3, 2:-2] + pp[..., 3:-1, 2:-2]
    near += pp[..., 2:-2, 1:-3]
    near += pp[..., 2:-2, 3:-1]
    far = pp[..., :-4, 2:-2] + pp[..., 4:, 2:-2]
    far += pp[..., 2:-2, :-4]
    far += pp[..., 2:-2, 4:]
    return torch.add(near.mul_(C1), far, alpha=C2)


def simulate_openfwi(
    velocity: torch.Tensor,
    nt: int = N_TIME,
    *,
    dtype: torch.dtype = torch.float32,
    nbc: int = NBC,
    extra: int = 0,
    periodic: bool = True,
) -> torch.Tensor:
    """(B, 70, 70) m/s -> (B, 5, nt, 70) shot gathers of the OpenFWI scheme, on the velocity's device.

    extra > 0 widens the border (same ramp, continued) and periodic=False gives a zero outer
    edge: together they remove the finite border's late leak (the scheme's interior physics only).
    """
    v = velocity.to(dtype)
    n_models, nz, nx = v.shape
    n_src = len(SOURCE_COLUMNS)
    w = nbc + extra
    # (B, 70, 70) -> (B, 1, 70 + 2w, 70 + 2w), edge-padded
    vel = F.pad(v[:, None], (w, w, w, w), mode="replicate")
    vmin = v.detach().amin(dim=(1, 2)).view(n_models, 1, 1, 1)
    kdt = torch.as_tensor(damping_profile(nz, nx, nbc, extra), dtype=dtype, device=v.device) * vmin * DT
    alpha = (vel * DT / DX) ** 2
    temp1 = 2.0 + 2.0 * C0 * alpha - kdt  # (B, 1, H, W)
    temp2 = 1.0 - kdt
    sz, rz = SOURCE_DEPTH_ROW + w, RECEIVER_DEPTH_ROW + w
    sx = torch.tensor(SOURCE_COLUMNS, device=v.device) + w
    shots = torch.arange(n_src, device=v.device)
    beta_src = (vel[:, 0, sz, sx] * DT) ** 2  # (B, 5): (v dt)^2 at each source
    wavelet = torch.as_tensor(ricker_openfwi(nt), dtype=dtype, device=v.device)
    p_prev = torch.zeros(n_models, n_src, *vel.shape[-2:], dtype=dtype, device=v.device)
    p_cur = torch.zeros_like(p_prev)
    records = []
    for it in range(nt):
        # (B, 5, H, W): the two time levels and the Laplacian of the current one
        p_next = torch.addcmul(torch.addcmul(-temp2 * p_prev, temp1, p_cur), alpha, _laplacian_off_centre(p_cur, periodic))
        p_next[:, shots, sz, sx] += beta_src * wavelet[it]
        records.append(p_next[:, :, rz, w : w + N_RECEIVERS].clone())  # (B, 5, 70); a view would keep p_next alive
        p_prev, p_cur = p_cur, p_next
    return torch.stack(records, dim=2)  # (B, 5, nt, 70)
