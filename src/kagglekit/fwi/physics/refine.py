"""Test-time refinement: fit each predicted velocity map to its own seismic.

Velocities stay in 1500-4500 m/s through v = 1500 + 3000 sigmoid(theta). The basis decides what
can change, and so how far a fit can wander from a good start (PHYSICS.md section 1):
- "rows": 70 row values, for maps detected as flat-layered (mirror-symmetric shots, or a flat
  start), with a smoothed 1-D total-variation prior;
- "smooth": a coarse grid (default 10x10) of logit offsets, bilinearly upsampled onto the start;
- "pixels": every pixel, with a smoothed 2-D total-variation prior.
Other maps run "smooth" then "pixels". The objective is the relative misfit (misfit / mean
observed power: 0 is a perfect fit, 1 is as far as predicting silence) plus the prior; L-BFGS
with a strong-Wolfe line search or Adam. Every evaluation offers its maps to a per-sample best
(by data misfit alone), so a sample keeps its start unless a refined map fits its seismic better,
and a NaN never replaces anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.physics.misfit import MISFIT_TIME, lowpass, misfit
from kagglekit.fwi.physics.simulate import FAST_PML_WIDTH

ROWS, SMOOTH, PIXELS = "rows", "smooth", "pixels"


@dataclass(frozen=True)
class RefineSettings:
    iters: int = 40  # optimiser iterations per sample, over all its stages
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    pml_width: int = FAST_PML_WIDTH  # deepwave's absorbing layer (simulate.py)
    tv_weight: float = 1e-2  # weight of the smoothed total variation (velocity in km/s)
    tv_eps: float = 0.01  # km/s: the smoothing of |gradient|
    smooth_grid: int = 10  # coarse grid of the smooth basis
    smooth_share: float = 0.4  # share of the iterations spent in the smooth stage before pixels
    adam_lr: float = 0.05  # in logit units
    lowpass_hz: float = 8.0  # the first stage fits only frequencies below this (0 = no such stage)
    lowpass_share: float = 0.0  # share of the iterations in that low-frequency stage
    history_size: int = 20  # L-BFGS memory
    symmetry_tol: float = 1e-3  # relative difference of mirrored shots below which a map is flat-layered
    flat_tol: float = 5.0  # m/s: mean across-row spread below which a start is flat


def relative_misfit(velocity: torch.Tensor, observed: torch.Tensor, pml_width: int = FAST_PML_WIDTH) -> torch.Tensor:
    """(B,) misfit over the first 999 samples divided by the observed data's mean power."""
    power = observed[:, :, :MISFIT_TIME].to(velocity.device, torch.float32).square().mean(dim=(1, 2, 3))
    return misfit(velocity, observed, pml_width=pml_width) / power


def mirror_symmetric(observed: torch.Tensor, tol: float = 1e-3) -> torch.Tensor:
    """(B, 5, T, 70) -> (B,) bool: shots 0/4 and 1/3 mirror each other (a laterally invariant map)."""
    left = observed[:, [0, 1]].float()
    right = observed[:, [4, 3]].float().flip(-1)
    diff = (left - right).square().sum(dim=(1, 2, 3)).sqrt()
    return diff / left.square().sum(dim=(1, 2, 3)).sqrt().clamp_min(1e-12) < tol


def flat_start(start: torch.Tensor, tol: float = 5.0) -> torch.Tensor:
    """(B, 70, 70) -> (B,) bool: every row nearly constant (mean across-row std below tol m/s)."""
    return start.float().std(dim=2).mean(dim=1) < tol


def choose_plans(start: torch.Tensor, observed: torch.Tensor, settings: RefineSettings) -> list[str]:
    """Per sample: "rows" for flat-layered maps, "smooth+pixels" otherwise."""
    flat = mirror_symmetric(observed, settings.symmetry_tol) | flat_start(start, settings.flat_tol).to(observed.device)
    return [ROWS if f else f"{SMOOTH}+{PIXELS}" for f in flat.tolist()]


def _logit(v: torch.Tensor) -> torch.Tensor:
    return torch.logit(((v - VMIN) / (VMAX - VMIN)).clamp(1e-4, 1 - 1e-4))


def _bounded(theta: torch.Tensor) -> torch.Tensor:
    return VMIN + (VMAX - VMIN) * torch.sigmoid(theta)


def _tv(v: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, 70, 70) or (B, 70) m/s -> (B,) mean smoothed |gradient| in km/s."""
    km = v / 1000.0
    if km.ndim == 2:
        return torch.sqrt(km.diff(dim=1).square() + eps**2).mean(dim=1)
    dz = km.diff(dim=1)[:, :, :-1]
    dx = km.diff(dim=2)[:, :-1, :]
    return torch.sqrt(dz.square() + dx.square() + eps**2).mean(dim=(1, 2))


class _Basis:
    """A parameterisation of B maps: trainable tensors, the velocities they give, their prior."""

    def __init__(self, name: str, start: torch.Tensor, settings: RefineSettings):
        self.name, self.settings = name, settings
        if name == ROWS:
            self.theta = _logit(start.mean(dim=2)).requires_grad_(True)  # (B, 70)
        elif name == SMOOTH:
            self.base = _logit(start)  # (B, 70, 70), fixed
            g = settings.smooth_grid
            self.theta = torch.zeros(start.shape[0], 1, g, g, device=start.device, requires_grad=True)
        elif name == PIXELS:
            self.theta = _logit(start).requires_grad_(True)  # (B, 70, 70)
        else:
            raise ValueError(f"unknown basis '{name}'; valid: {ROWS}, {SMOOTH}, {PIXELS}")

    def velocity(self) -> torch.Tensor:
        """(B, 70, 70) m/s."""
        if self.name == ROWS:
            return _bounded(self.theta)[:, :, None].expand(-1, -1, 70)
        if self.name == SMOOTH:
            offset = F.interpolate(self.theta, size=(70, 70), mode="bilinear", align_corners=True)[:, 0]
            return _bounded(self.base + offset)
        return _bounded(self.theta)

    def prior(self, velocity: torch.Tensor) -> torch.Tensor:
        """(B,) the basis's regulariser (none for the smooth basis: it is smooth by construction)."""
        if self.name == ROWS:
            return _tv(velocity[:, :, 0], self.settings.tv_eps)
        if self.name == PIXELS:
            return _tv(velocity, self.settings.tv_eps)
        return torch.zeros(velocity.shape[0], device=velocity.device)


@dataclass
class _Best:
    """The best map (by data misfit) seen so far for every sample."""

    velocity: torch.Tensor  # (B, 70, 70)
    misfit: torch.Tensor  # (B,)

    def offer(self, velocity: torch.Tensor, data_misfit: torch.Tensor) -> None:
        # a gain within the simulator's float noise (1e-4 relative) is no reason to change a map
        better = torch.isfinite(data_misfit) & (data_misfit < self.misfit * (1 - 1e-4))
        self.velocity[better] = velocity[better]
        self.misfit[better] = data_misfit[better]


class _Diverged(Exception):
    """The objective became non-finite: the stage ends, the best maps so far stand."""


def _run_stage(
    basis: _Basis,
    observed: torch.Tensor,
    power: torch.Tensor,
    iters: int,
    best: _Best,
    s: RefineSettings,
    lowpass_hz: float | None = None,
) -> int:
    """Optimise one basis for up to `iters` iterations; returns the iterations done. With lowpass_hz
    the objective sees only low frequencies, and maps are offered to `best` by their full-band misfit."""

    def objective() -> torch.Tensor:
        v = basis.velocity()
        if lowpass_hz is None:
            data = misfit(v, observed, pml_width=s.pml_width) / power  # (B,)
            best.offer(v.detach(), data.detach())
        else:
            data = misfit(v, observed, pml_width=s.pml_width, lowpass_hz=lowpass_hz) / lowpass_power
            with torch.no_grad():
                best.offer(v.detach(), misfit(v.detach(), observed, pml_width=s.pml_width) / power)
        total = (data + s.tv_weight * basis.prior(v)).sum()
        if not torch.isfinite(total):
            raise _Diverged
        return total

    if lowpass_hz is not None:
        lowpass_power = lowpass(observed[:, :, :MISFIT_TIME].float(), lowpass_hz).square().mean(dim=(1, 2, 3))
    if s.optimizer == "adam":
        opt = torch.optim.Adam([basis.theta], lr=s.adam_lr)
        done = 0
        try:
            while done < iters:
                opt.zero_grad()
                objective().backward()
                opt.step()
                done += 1
        except _Diverged:
            pass  # the best maps so far are kept; the stage simply ends
        return done

    opt = torch.optim.LBFGS(
        [basis.theta],
        lr=1.0,
        max_iter=iters,
        max_eval=int(iters * 1.25) + 1,
        history_size=s.history_size,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        total = objective()
        total.backward()
        return total

    try:
        opt.step(closure)
    except _Diverged:
        pass  # the best maps so far are kept; the stage simply ends
    return int(opt.state[basis.theta].get("n_iter", 0))


def _stages(plan: str, s: RefineSettings) -> list[tuple[str, int, float | None]]:
    """(basis, iterations, low-pass cutoff or None) in order: an optional low-frequency stage of the
    first basis, then the plan's bases (smooth takes smooth_share of a smooth+pixels plan)."""
    names = plan.split("+")
    n_low = round(s.iters * s.lowpass_share) if s.lowpass_hz > 0 else 0
    rest = s.iters - n_low
    n_first = round(rest * s.smooth_share) if len(names) > 1 else rest
    stages = [(names[0], n_low, s.lowpass_hz)] if n_low else []
    stages.append((names[0], n_first, None))
    if len(names) > 1:
        stages.append((names[1], rest - n_first, None))
    return stages


@dataclass
class RefineResult:
    velocity: torch.Tensor  # (B, 70, 70) m/s: the refined map where it fits better, else the start
    misfit_before: torch.Tensor  # (B,) relative misfit of the start
    misfit_after: torch.Tensor  # (B,) relative misfit of `velocity`
    accepted: torch.Tensor  # (B,) bool: the refined map replaced the start
    iterations: list[int] = field(default_factory=list)  # per sample
    plans: list[str] = field(default_factory=list)  # per sample, e.g. "rows" or "smooth+pixels"
    seconds: float = 0.0


def refine_batch(start: torch.Tensor, observed: torch.Tensor, settings: RefineSettings | None = None) -> RefineResult:
    """Refine B maps (B, 70, 70) m/s against their seismic (B, 5, >= 999, 70), on start's device."""
    s = settings or RefineSettings()
    t0 = time.perf_counter()
    device = start.device
    start = start.float().clamp(VMIN, VMAX)
    observed = observed.to(device, torch.float32)
    power = observed[:, :, :MISFIT_TIME].square().mean(dim=(1, 2, 3))  # (B,)
    with torch.no_grad():
        before = misfit(start, observed, pml_width=s.pml_width) / power
    plans = choose_plans(start, observed, s)
    best = _Best(start.clone(), before.clone())
    iterations = [0] * len(plans)
    for plan in sorted(set(plans)):
        rows = [i for i, p in enumerate(plans) if p == plan]
        idx = torch.tensor(rows, device=device)
        group = _Best(best.velocity[idx].clone(), best.misfit[idx].clone())
        done = 0
        for name, n_iter, cutoff in _stages(plan, s):
            if n_iter <= 0:
                continue
            # each stage starts from the best maps so far (a pixel stage refines the smooth fit)
            basis = _Basis(name, group.velocity.clone(), s)
            done += _run_stage(basis, observed[idx], power[idx], n_iter, group, s, cutoff)
        best.velocity[idx], best.misfit[idx] = group.velocity, group.misfit
        for i in rows:
            iterations[i] = done
    accepted = best.misfit < before
    return RefineResult(best.velocity, before, best.misfit, accepted, iterations, plans, time.perf_counter() - t0)
