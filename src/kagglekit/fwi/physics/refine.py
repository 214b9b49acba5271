"""Test-time refinement: fit each predicted velocity map to its own seismic.

Two methods. "staged" (the default, `physics/stages.py`): stages per kind of map (flat layers from
mirror-symmetric shots: rows, rounding, layers; others: cosine modes, pixels, merged regions,
rounding), every map its own L-BFGS, under the operator `operator` (`physics/datafit.py`:
deepwave, deepwave + the exact scheme's refreshed defect, or the exact scheme). "basis" (below):

Velocities stay in 1500-4500 m/s through v = 1500 + 3000 sigmoid(theta). The basis decides what
can change, and so how far a fit can wander from a good start (docs/reference/physics-facts.md section 1):
- "rows": 70 row values, for maps detected as flat-layered (mirror-symmetric shots, or a flat
  start), with a smoothed 1-D total-variation prior;
- "smooth": a coarse grid (default 10x10) of logit offsets, bilinearly upsampled onto the start;
- "pixels": every pixel, with a smoothed 2-D total-variation prior.
Other maps run "smooth" then "pixels". The objective is the relative misfit (misfit / mean
observed power: 0 is a perfect fit, 1 is as far as predicting silence) plus the prior. The
optimiser is by default an L-BFGS per map ("lbfgs-map", `physics/lbfgs.py`: each map its own
history, step, line search and stopping rule, so a map gets the same result alone or in any batch);
"lbfgs" (one torch L-BFGS with a strong-Wolfe line search on the batch's summed objective) and
"adam" remain. Every evaluation offers its maps to a per-sample best (by data misfit alone), so a
sample keeps its start unless a refined map fits its seismic better, and a NaN never replaces
anything. A map whose objective turns non-finite (a record without power, a diverging fit) leaves
the batch, keeps its start and is reported (status "failed" and its reason); the others go on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.physics.misfit import MISFIT_TIME, lowpass, misfit
from kagglekit.fwi.physics.simulate import FAST_PML_WIDTH

ROWS, SMOOTH, PIXELS = "rows", "smooth", "pixels"
# an objective + gradient evaluation costs up to this many gradient-free forwards (deepwave keeps
# the wavefields for the backward pass; measured 6-16x on a loaded 2-core CPU)
GRADIENT_COST = 16.0


@dataclass(frozen=True)
class RefineSettings:
    iters: int = 40  # optimiser iterations per sample, over all its stages
    optimizer: Literal["lbfgs", "lbfgs-map", "adam"] = "lbfgs-map"  # lbfgs-map: every map its own L-BFGS; lbfgs: one shared
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
    # method "basis" (the default, the measured recipe): the rows / smooth+pixels plans above, one
    # L-BFGS per map; "staged": physics/stages.py, the stages per kind of map (not yet shown better in
    # a same-run comparison: docs/results/2026-11-27-refine-realistic-starts.md). The fields below are
    # the staged method's.
    method: Literal["staged", "basis"] = "basis"
    operator: Literal["deepwave", "corrected", "openfwi"] = "corrected"  # physics/datafit.py
    n_time: int = MISFIT_TIME  # time samples fitted
    late_weight: float = 0.0  # residual weight rises linearly to 1 + late_weight at the last sample
    tol_grad: float = 1e-12  # per-map L-BFGS stops below this max |gradient| ...
    tol_change: float = 1e-10  # ... or when the objective changes by less than this share
    refresh_every: int = 10  # corrected: iterations between defect refreshes
    stage_iters: tuple[tuple[str, int], ...] = ()  # e.g. (("rows", 60),): iterations of named stages (else shares of iters)

    def stages(self):
        """The staged method's settings, iterations split from `iters` unless `stage_iters` names them."""
        from kagglekit.fwi.physics.stages import STAGE_SHARES, StageSettings

        counts = stage_split(self.iters, STAGE_SHARES)
        counts.update(dict(self.stage_iters))
        return StageSettings(
            operator=self.operator,
            n_time=self.n_time,
            late_weight=self.late_weight,
            tol_grad=self.tol_grad,
            tol_change=self.tol_change,
            refresh_every=self.refresh_every,
            history=self.history_size,
            **{f"{name}_iters": n for name, n in counts.items()},
        )


def stage_split(iters: int, shares: dict[str, float]) -> dict[str, int]:
    """Iterations per stage summing to `iters` per kind of map: the first stage of a kind (row, pixel)
    takes what rounding leaves of the others (flat: row + layer; 2d: dct + pixel + merge)."""
    counts = {name: round(share * iters) for name, share in shares.items()}
    counts["row"] = iters - counts["layer"]
    counts["pixel"] = iters - counts["dct"] - counts["merge"]
    return counts


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
        return self.velocity_of(self.theta)

    def velocity_of(self, theta: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """(b, 70, 70) m/s of parameters `theta` (b, *theta.shape[1:]) of the maps `idx` (all by default)."""
        if self.name == ROWS:
            return _bounded(theta)[:, :, None].expand(-1, -1, 70)
        if self.name == SMOOTH:
            offset = F.interpolate(theta, size=(70, 70), mode="bilinear", align_corners=True)[:, 0]
            return _bounded((self.base if idx is None else self.base[idx]) + offset)
        return _bounded(theta)

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
    """Some maps' objective or gradient became non-finite: they leave the batch."""

    def __init__(self, bad: torch.Tensor):
        super().__init__(f"{int(bad.sum())} maps diverged")
        self.bad = bad  # (B,) bool


class _OutOfTime(Exception):
    """The next evaluation would end after the deadline: the stage ends, the best maps so far stand."""


@dataclass
class _Clock:
    """A deadline (time.monotonic() seconds, None = none) and the measured cost of one evaluation."""

    deadline: float | None = None
    eval_seconds: float = 0.0

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() + self.eval_seconds > self.deadline:
            raise _OutOfTime


@dataclass
class _StageEnd:
    iterations: int | list[int]  # done by the shared optimiser, or per map
    bad: torch.Tensor | None = None  # (B,) bool: maps whose objective became non-finite
    out_of_time: bool = False
    others_done: bool = False  # the maps not in `bad` finished the stage (else they restart without them)


def _run_stage(
    basis: _Basis,
    observed: torch.Tensor,
    power: torch.Tensor,
    iters: int,
    best: _Best,
    s: RefineSettings,
    clock: _Clock,
    lowpass_hz: float | None = None,
) -> _StageEnd:
    """Optimise one basis for up to `iters` iterations. With lowpass_hz the objective sees only low
    frequencies, and maps are offered to `best` by their full-band misfit. A map whose objective or
    gradient is not finite stops the stage (returned in `bad`, so the caller can drop it and go on)."""

    def objective() -> torch.Tensor:
        clock.check()
        t0 = time.monotonic()
        v = basis.velocity()
        if lowpass_hz is None:
            data = misfit(v, observed, pml_width=s.pml_width) / power  # (B,)
            best.offer(v.detach(), data.detach())
        else:
            data = misfit(v, observed, pml_width=s.pml_width, lowpass_hz=lowpass_hz) / lowpass_power
            with torch.no_grad():
                best.offer(v.detach(), misfit(v.detach(), observed, pml_width=s.pml_width) / power)
        per_map = data + s.tv_weight * basis.prior(v)  # (B,)
        bad = ~torch.isfinite(per_map.detach())
        if bool(bad.any()):
            raise _Diverged(bad)
        total = per_map.sum()
        total.backward()
        grad_bad = ~torch.isfinite(basis.theta.grad.flatten(1)).all(dim=1)  # (B,)
        if bool(grad_bad.any()):
            raise _Diverged(grad_bad)
        clock.eval_seconds = time.monotonic() - t0
        return total.detach()

    if lowpass_hz is not None:
        lowpass_power = lowpass(observed[:, :, :MISFIT_TIME].float(), lowpass_hz).square().mean(dim=(1, 2, 3))
    if s.optimizer == "lbfgs-map":
        return _run_stage_per_map(basis, observed, power, iters, best, s, clock, lowpass_hz)
    if s.optimizer == "adam":
        opt = torch.optim.Adam([basis.theta], lr=s.adam_lr)
        done = 0
        try:
            while done < iters:
                opt.zero_grad()
                objective()
                opt.step()
                done += 1
        except _Diverged as err:
            return _StageEnd(done, bad=err.bad)
        except _OutOfTime:
            return _StageEnd(done, out_of_time=True)
        return _StageEnd(done)

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
        return objective()

    def iterations() -> int:
        return int(opt.state[basis.theta].get("n_iter", 0))

    try:
        opt.step(closure)
    except _Diverged as err:
        return _StageEnd(iterations(), bad=err.bad)
    except _OutOfTime:
        return _StageEnd(iterations(), out_of_time=True)
    return _StageEnd(iterations())


def _run_stage_per_map(
    basis: _Basis,
    observed: torch.Tensor,
    power: torch.Tensor,
    iters: int,
    best: _Best,
    s: RefineSettings,
    clock: _Clock,
    lowpass_hz: float | None,
) -> _StageEnd:
    """`_run_stage` with every map its own L-BFGS (history, step, line search, stopping rule): a
    map's result does not depend on the batch it is in; a map that is not finite at the start fails."""
    from kagglekit.fwi.physics.lbfgs import minimize

    shape = basis.theta.shape[1:]
    band_power = power
    if lowpass_hz is not None:
        band_power = lowpass(observed[:, :, :MISFIT_TIME].float(), lowpass_hz).square().mean(dim=(1, 2, 3))

    def f(x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, n) parameters of the maps idx -> (b,) objective and (b, n) gradient."""
        t0 = time.monotonic()
        theta = x.detach().view(len(idx), *shape).requires_grad_(True)
        v = basis.velocity_of(theta, idx)
        data = misfit(v, observed[idx], pml_width=s.pml_width, lowpass_hz=lowpass_hz) / band_power[idx]
        per_map = data + s.tv_weight * basis.prior(v)  # (b,)
        (grad,) = torch.autograd.grad(per_map.sum(), theta)
        with torch.no_grad():
            full = data if lowpass_hz is None else misfit(v.detach(), observed[idx], pml_width=s.pml_width) / power[idx]
            group = _Best(best.velocity[idx], best.misfit[idx])
            group.offer(v.detach(), full.detach())
            best.velocity[idx], best.misfit[idx] = group.velocity, group.misfit
        clock.eval_seconds = (time.monotonic() - t0) * len(observed) / len(idx)  # as if all maps were evaluated
        return per_map.detach(), grad.flatten(1)

    result = minimize(
        f,
        basis.theta.detach().flatten(1),
        iters,
        history=s.history_size,
        check=clock.check,
        stop=_OutOfTime,
    )
    bad = result.failed if bool(result.failed.any()) else None
    return _StageEnd(result.iterations.tolist(), bad=bad, out_of_time=result.out_of_time, others_done=True)


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


OK, FAILED = "ok", "failed"


@dataclass
class RefineResult:
    velocity: torch.Tensor  # (B, 70, 70) m/s: the refined map where it fits better, else the start
    misfit_before: torch.Tensor  # (B,) relative misfit of the start (inf / nan for a record without power)
    misfit_after: torch.Tensor  # (B,) relative misfit of `velocity`
    accepted: torch.Tensor  # (B,) bool: the refined map replaced the start
    iterations: list[int] = field(default_factory=list)  # per sample
    plans: list[str] = field(default_factory=list)  # per sample, e.g. "rows" or "smooth+pixels"
    seconds: float = 0.0
    status: list[str] = field(default_factory=list)  # per sample: "ok" or "failed" (the start is kept)
    reasons: list[str] = field(default_factory=list)  # per sample: why it failed or stopped early ("" if neither)
    out_of_time: bool = False  # the deadline cut the refinement short
    eval_seconds: float = 0.0  # the last objective + gradient evaluation of the batch


def _failure_reason(power: float, stage: str, iterations: int) -> str:
    if power == 0:
        return "observed seismic has zero power"
    if not math.isfinite(power):
        return "observed seismic power is not finite"
    return f"objective or gradient not finite in stage {stage} after {iterations} iterations"


def _refine_staged(
    start: torch.Tensor, observed: torch.Tensor, s: RefineSettings, deadline: float | None, eval_seconds: float | None
) -> RefineResult:
    """refine_batch by physics/stages.py: every map its own L-BFGS, stages per kind of map."""
    from kagglekit.fwi.physics.stages import refine_staged

    if deadline is not None and eval_seconds and time.monotonic() + eval_seconds > deadline:
        deadline = time.monotonic()  # not even one evaluation fits: every map keeps its start
    staged = refine_staged(start, observed, s.stages(), deadline=deadline)
    power = observed[:, :, : s.n_time].double().square().mean(dim=(1, 2, 3))
    n = len(start)
    status = [FAILED if f else OK for f in staged.failed.tolist()]
    reasons = [
        _failure_reason(float(power[i]), staged.stages[i] or "start", int(staged.iterations[i])) if status[i] == FAILED else ""
        for i in range(n)
    ]
    if staged.out_of_time:
        reasons = [
            r or f"stopped by the time budget after {int(k)} iterations" for r, k in zip(reasons, staged.iterations, strict=True)
        ]
    evaluations = max(1, int(staged.iterations.max()) if n else 1)
    return RefineResult(
        staged.velocity.to(start.device),
        staged.misfit_before.float(),
        staged.misfit_after.float(),
        staged.misfit_after < staged.misfit_before,
        [int(k) for k in staged.iterations],
        [f"{kind}:{stages}" for kind, stages in zip(staged.kinds, staged.stages, strict=True)],
        staged.seconds,
        status,
        reasons,
        staged.out_of_time,
        staged.seconds / evaluations,
    )


def refine_batch(
    start: torch.Tensor,
    observed: torch.Tensor,
    settings: RefineSettings | None = None,
    *,
    deadline: float | None = None,
    eval_seconds: float | None = None,
) -> RefineResult:
    """Refine B maps (B, 70, 70) m/s against their seismic (B, 5, >= 999, 70), on start's device.

    A map whose objective or gradient becomes non-finite leaves the batch (status "failed", its
    start kept, the reason reported) and the others go on from their best maps so far. With
    `deadline` (a time.monotonic() value) no evaluation starts that would end after it, by the
    measured cost of the last one (`eval_seconds` or GRADIENT_COST forwards before the first)."""
    s = settings or RefineSettings()
    if s.method == "staged":
        return _refine_staged(start, observed, s, deadline, eval_seconds)
    t0 = time.perf_counter()
    device = start.device
    start = start.float().clamp(VMIN, VMAX)
    observed = observed.to(device, torch.float32)
    power = observed[:, :, :MISFIT_TIME].square().mean(dim=(1, 2, 3))  # (B,)
    t_forward = time.monotonic()
    with torch.no_grad():
        before = misfit(start, observed, pml_width=s.pml_width) / power
    clock = _Clock(deadline, eval_seconds=eval_seconds or GRADIENT_COST * (time.monotonic() - t_forward))
    plans = choose_plans(start, observed, s)
    best = _Best(start.clone(), before.clone())
    n = len(plans)
    iterations, status, reasons = [0] * n, [OK] * n, [""] * n
    out_of_time = False
    for plan in sorted(set(plans)):
        active = [i for i, p in enumerate(plans) if p == plan]
        for name, n_iter, cutoff in _stages(plan, s):
            left = n_iter
            while active and left > 0 and not out_of_time:
                # each stage starts from the best maps so far (a pixel stage refines the smooth fit);
                # after a divergence the others restart from theirs with the iterations left
                idx = torch.tensor(active, device=device)
                group = _Best(best.velocity[idx].clone(), best.misfit[idx].clone())
                basis = _Basis(name, group.velocity.clone(), s)
                end = _run_stage(basis, observed[idx], power[idx], left, group, s, clock, cutoff)
                best.velocity[idx], best.misfit[idx] = group.velocity, group.misfit
                done = end.iterations if isinstance(end.iterations, list) else [end.iterations] * len(active)
                for i, k in zip(active, done, strict=True):
                    iterations[i] += k
                left -= max(done, default=0)
                out_of_time = end.out_of_time
                if end.bad is None:
                    break
                dropped = [i for i, b in zip(active, end.bad.tolist(), strict=True) if b]
                for i in dropped:
                    status[i], reasons[i] = FAILED, _failure_reason(float(power[i]), name, iterations[i])
                    best.velocity[i], best.misfit[i] = start[i], before[i]
                active = [i for i in active if i not in dropped]
                if end.others_done:
                    break
            if out_of_time:
                break
    if out_of_time:
        for i in range(n):
            if status[i] == OK and not reasons[i]:
                reasons[i] = f"stopped by the time budget after {iterations[i]} iterations"
    accepted = best.misfit < before
    return RefineResult(
        best.velocity,
        before,
        best.misfit,
        accepted,
        iterations,
        plans,
        time.perf_counter() - t0,
        status,
        reasons,
        out_of_time,
        clock.eval_seconds,
    )
