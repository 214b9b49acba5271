"""Data misfit: how far simulate(velocity) is from the observed shot gathers, per sample.

The observed data is the input seismic of the same sample (test or train), never a velocity
label. The last released time sample is inconsistent with the simulator, so only the first 999
samples count by default.
"""

from __future__ import annotations

from typing import Literal

import torch

from kagglekit.fwi.constants import DT, N_RECEIVERS, N_SOURCES, N_TIME
from kagglekit.fwi.physics.simulate import FAST_PML_WIDTH, simulate

MISFIT_TIME = N_TIME - 1  # 999: the released last sample does not follow the simulator


def _normalise_traces(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, 5, T, 70): every trace (one shot, one receiver) divided by its L2 norm over time."""
    return x / (x.square().sum(dim=2, keepdim=True).sqrt() + eps)


def lowpass(x: torch.Tensor, cutoff_hz: float, dt: float = DT) -> torch.Tensor:
    """(B, 5, T, 70) traces low-passed along time: a cosine taper from 0.75 to 1.0 x cutoff_hz."""
    n = x.shape[2]
    freqs = torch.fft.rfftfreq(n, d=dt).to(x.device)
    taper = ((cutoff_hz - freqs) / (0.25 * cutoff_hz)).clamp(0, 1)  # 1 below 0.75 cutoff, 0 above
    gain = (0.5 - 0.5 * torch.cos(torch.pi * taper)).to(x.dtype).view(1, 1, -1, 1)
    return torch.fft.irfft(torch.fft.rfft(x, dim=2) * gain, n=n, dim=2)


def misfit(
    velocity: torch.Tensor,
    observed: torch.Tensor,
    *,
    norm: Literal["l2", "l1"] = "l2",
    n_time: int = MISFIT_TIME,
    time_weight: torch.Tensor | None = None,
    normalise_traces: bool = False,
    lowpass_hz: float | None = None,
    backend: str = "deepwave",
    dtype: torch.dtype = torch.float32,
    pml_width: int = 20,
) -> torch.Tensor:
    """(B, 70, 70) m/s and (B, 5, >= n_time, 70) observed -> (B,) mean squared (l2) or absolute
    (l1) residual over shots, the first n_time samples and receivers; differentiable in velocity.

    time_weight (n_time,) scales the residual of each time sample (e.g. to favour late arrivals);
    normalise_traces compares shapes of traces rather than amplitudes.
    """
    if observed.ndim != 4 or observed.shape[1] != N_SOURCES or observed.shape[3] != N_RECEIVERS:
        raise ValueError(f"misfit: observed must be (B, {N_SOURCES}, T, {N_RECEIVERS}), got {tuple(observed.shape)}")
    if observed.shape[0] != velocity.shape[0] or observed.shape[2] < n_time:
        raise ValueError(
            f"misfit: {velocity.shape[0]} velocity maps need as many records with >= {n_time} samples, "
            f"got observed {tuple(observed.shape)}"
        )
    if norm not in ("l2", "l1"):
        raise ValueError(f"misfit: norm must be 'l2' or 'l1', got '{norm}'")
    synthetic = simulate(velocity, nt=n_time, backend=backend, dtype=dtype, pml_width=pml_width)  # (B, 5, n_time, 70)
    obs = observed[:, :, :n_time].to(device=synthetic.device, dtype=dtype)
    if lowpass_hz is not None:  # compare only the low frequencies (less cycle skipping from a far start)
        synthetic, obs = lowpass(synthetic, lowpass_hz), lowpass(obs, lowpass_hz)
    if normalise_traces:
        synthetic, obs = _normalise_traces(synthetic), _normalise_traces(obs)
    residual = synthetic - obs
    if time_weight is not None:
        if time_weight.shape != (n_time,):
            raise ValueError(f"misfit: time_weight must have shape ({n_time},), got {tuple(time_weight.shape)}")
        residual = residual * time_weight.to(residual).view(1, 1, n_time, 1)
    per_value = residual.square() if norm == "l2" else residual.abs()
    return per_value.mean(dim=(1, 2, 3))


def relative_misfit(velocity: torch.Tensor, observed: torch.Tensor, pml_width: int = FAST_PML_WIDTH) -> torch.Tensor:
    """(B, 70, 70) m/s and (B, 5, >= 999, 70) observed -> (B,) misfit over the first 999 samples
    divided by the observed data's mean power: 0 is a perfect fit, 1 is as far as predicting silence."""
    power = observed[:, :, :MISFIT_TIME].to(velocity.device, torch.float32).square().mean(dim=(1, 2, 3))
    return misfit(velocity, observed, pml_width=pml_width) / power
