"""Forward modelling that reproduces the OpenFWI generator with deepwave.

OpenFWI: 2-D constant-density acoustic wave equation, 2nd order in time / 4th order in space,
dx = 10 m, dt = 1 ms, 15 Hz Ricker (147 samples, peak at sample 73), sources at columns
0, 17, 34, 52, 69 and receivers at every column, all at depth row 1, absorbing border.

deepwave settings that match it (relative L2 ~1e-3, asserted in tests/test_physics.py against
our own finite-difference implementation of the OpenFWI scheme):
- source amplitude = minus the Ricker: deepwave injects -amp * v^2 dt^2;
- deepwave records one step earlier: simulate 1001 steps, drop sample 0;
- max_vel=4500 and courant_number=0.7 pin one internal step per 1 ms for every model.

backend="openfwi" runs the OpenFWI scheme itself (physics/openfwi.py): exact, including the
border's late leak, but slower and memory-hungry under autograd. pml_width=10 (FAST_PML_WIDTH) makes
deepwave's forward+backward 2.4x faster (`benchmarks/simulate_throughput.py`) at a slightly higher
floor against the OpenFWI scheme (relative L2 1.4e-3 vs 0.9e-3 at 20 cells;
`benchmarks/simulator_accuracy.py`).
"""

from __future__ import annotations

import deepwave
import numpy as np
import torch

from kagglekit.fwi.constants import (
    DT,
    DX,
    N_RECEIVERS,
    N_TIME,
    RECEIVER_DEPTH_ROW,
    RICKER_FREQ,
    SEISMIC_SHAPE,
    SOURCE_COLUMNS,
    SOURCE_DEPTH_ROW,
    VMAX,
)
from kagglekit.fwi.physics.openfwi import simulate_openfwi
from kagglekit.fwi.physics.wavelet import recorded_peak_sample, ricker_centre, ricker_openfwi

__all__ = ["simulate", "simulate_with_mirror", "simulate_maps", "ricker_openfwi", "ricker_centre", "recorded_peak_sample"]


def _geometry(n_models: int, device: torch.device, source_columns: tuple[int, ...] = SOURCE_COLUMNS):
    n_shots = n_models * len(source_columns)
    src = torch.zeros(n_shots, 1, 2, dtype=torch.long, device=device)
    src[:, 0, 0] = SOURCE_DEPTH_ROW
    src[:, 0, 1] = torch.tensor(source_columns, device=device).repeat(n_models)
    rec = torch.zeros(n_shots, N_RECEIVERS, 2, dtype=torch.long, device=device)
    rec[:, :, 0] = RECEIVER_DEPTH_ROW
    rec[:, :, 1] = torch.arange(N_RECEIVERS, device=device)
    return src, rec


BACKENDS = ("deepwave", "openfwi")
# Six shots whose mirror image is again six shots of the same geometry (column c -> 69 - c):
# flipping a 6-shot record and keeping FLIP6_KEEP gives the exact 5-shot record of the flipped map.
FLIP6_COLUMNS = (0, 17, 34, 35, 52, 69)
FLIP6_KEEP = (0, 1, 2, 4, 5)
FAST_PML_WIDTH = 10  # what optimisation uses: 2.4x faster forward+backward than 20 cells (simulate_throughput)


def simulate(
    velocity: torch.Tensor | np.ndarray,
    nt: int = N_TIME,
    *,
    backend: str = "deepwave",
    dtype: torch.dtype = torch.float32,
    pml_width: int = 20,
    source_columns: tuple[int, ...] = SOURCE_COLUMNS,
) -> torch.Tensor:
    """(B, 70, 70) velocity in m/s -> (B, S, nt, 70) shot gathers in `dtype`, differentiable;
    S = len(source_columns), the competition's 5 shots by default (FLIP6_COLUMNS adds column 35).

    Runs on the velocity's device (CPU or CUDA); all B models are propagated in one call.
    """
    v = torch.as_tensor(velocity)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[-2:] != (70, 70):
        raise ValueError(f"simulate expects velocity (B, 70, 70), got {tuple(v.shape)}")
    if backend not in BACKENDS:
        raise ValueError(f"simulate: unknown backend '{backend}'; valid: {', '.join(BACKENDS)}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"simulate: dtype must be float32 or float64, got {dtype}")
    v = v.to(dtype)
    if not torch.isfinite(v).all():
        raise ValueError("simulate: velocity has non-finite values")
    vmin, vmax = float(v.detach().min()), float(v.detach().max())
    if vmin <= 0 or vmax > VMAX * 1.0001:
        raise ValueError(f"simulate: velocity must lie in (0, {VMAX}] m/s, got [{vmin:.1f}, {vmax:.1f}]")
    if backend == "openfwi":
        if tuple(source_columns) != SOURCE_COLUMNS:
            raise ValueError("simulate: the openfwi backend has the competition's 5 sources only")
        return simulate_openfwi(v, nt, dtype=dtype)
    n_models = v.shape[0]
    n_src = len(source_columns)
    # (B, 70, 70) -> (SB, 70, 70): one model per shot
    v_shots = v.repeat_interleave(n_src, dim=0)
    src_loc, rec_loc = _geometry(n_models, v.device, tuple(source_columns))
    wavelet = -torch.as_tensor(ricker_openfwi(nt + 1), dtype=dtype, device=v.device)
    amplitudes = wavelet.expand(n_models * n_src, 1, nt + 1).contiguous()
    out = deepwave.scalar(
        v_shots,
        DX,
        DT,
        source_amplitudes=amplitudes,
        source_locations=src_loc,
        receiver_locations=rec_loc,
        accuracy=4,
        pml_width=pml_width,
        pml_freq=RICKER_FREQ,
        max_vel=VMAX,
        courant_number=0.7,
        location_interpolation="none",
    )
    data = out.receiver_amplitudes[..., 1:]  # (SB, 70, nt): drop the early sample
    # (SB, 70, nt) -> (B, S, nt, 70)
    return data.reshape(n_models, n_src, N_RECEIVERS, nt).transpose(-1, -2).contiguous()


def simulate_with_mirror(velocity: torch.Tensor | np.ndarray, nt: int = N_TIME, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 70, 70) -> the records of the maps and of their mirror images (velocity.flip(-1)), each
    (B, 5, nt, 70), from one 6-shot simulation: exact for both, at 6/5 the cost of one record."""
    six = simulate(velocity, nt, source_columns=FLIP6_COLUMNS, **kwargs)  # (B, 6, nt, 70)
    direct = six[:, list(FLIP6_KEEP)]
    # mirror: receivers r -> 69 - r, shot columns c -> 69 - c (6 shots reversed), then the 5 kept
    mirrored = six.flip(-1).flip(1)[:, list(FLIP6_KEEP)]
    return direct.contiguous(), mirrored.contiguous()


def simulate_maps(
    velocity: np.ndarray,
    *,
    mirror: bool = False,
    device: str = "cpu",
    batch: int = 32,
    backend: str = "deepwave",
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The one batched simulation loop: (n, 70, 70) maps -> records (n, 5, 1000, 70) float32 (into
    `out`, e.g. a memmap, when given) and, with `mirror`, the records of the mirrored maps (None
    otherwise); `batch` maps per simulator call on `device`, no gradients."""
    if batch < 1:
        raise ValueError(f"simulate_maps: batch must be >= 1, got {batch}")
    direct = np.zeros((len(velocity), *SEISMIC_SHAPE), dtype=np.float32) if out is None else out
    mirrored = np.zeros_like(direct) if mirror else None
    for start in range(0, len(velocity), batch):
        v = torch.from_numpy(np.ascontiguousarray(velocity[start : start + batch], dtype=np.float32)).to(device)
        with torch.no_grad():
            if mirror:
                d, m = simulate_with_mirror(v, backend=backend)
                mirrored[start : start + len(v)] = m.cpu().numpy()
            else:
                d = simulate(v, backend=backend)
        direct[start : start + len(v)] = d.cpu().numpy()
    return direct, mirrored
