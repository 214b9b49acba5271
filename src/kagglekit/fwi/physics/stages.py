"""Refinement in stages per kind of map, every map its own L-BFGS (physics/lbfgs.py), under a
chosen operator (physics/datafit.py). Velocities are the variables themselves (km/s), clamped to
1500-4500 m/s; the objective is the relative misfit plus a smoothed total variation
`mean sqrt(dz^2 + dx^2 + eps^2)` (km/s) of the map.

- "flat" (mirror-symmetric shots: rms(seis[0] - flip(seis[4])) below `flat_symmetry`): 70 row
  values from the row means (the least-squares projection of the start), 1-D TV; round to whole
  m/s; merge neighbouring rows within `layer_tol` into layers, polish the layer values, round again.
- "2d" (everything else): a low-dimensional cosine (DCT) correction of the start, then pixels with
  2-D TV, then each flat region (4-neighbours within `merge_tol` m/s) becomes one variable,
  polished and rounded; the merge is kept only if it fits about as well as the pixels.
- Never worse than the start: a map whose final misfit exceeds its start's keeps its start.
Under "corrected" the defect is refreshed at the current maps every `refresh_every` iterations
(each refresh restarts the per-map L-BFGS, whose objective just changed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from kagglekit.fwi.constants import GRID, VMAX, VMIN
from kagglekit.fwi.physics.datafit import DataFit
from kagglekit.fwi.physics.lbfgs import CONVERGED, OUT_OF_TIME, LbfgsSettings, minimize
from kagglekit.fwi.physics.misfit import MISFIT_TIME

FLAT, TWO_D = "flat", "2d"
GRADIENT_COST = 16.0  # a gradient evaluation costs up to this many deepwave forwards (physics/refine.py)
EXACT_COST = 15.0  # an exact-scheme forward costs ~this many deepwave forwards (CPU, one thread: 0.65 s / 0.045 s)
# rms(seis[0] - flip(seis[4])) over the first 999 samples, measured on 4 whole-m/s maps per family
# (seed 11): flat maps 0 (deepwave) and 1.9e-6-3.8e-6 (the exact scheme, float32); every other
# family >= 0.05 except a laterally flat FlatFault_A (3.6e-6: one layered column, rows are right);
# the OpenFWI release's FlatVel maps reach 9.57e-6 (docs/reference/physics-facts.md section 5). 1e-4 keeps a 10x margin.
FLAT_SYMMETRY = 1e-4
# share of a map's iteration budget per stage (flat: rows + layers; 2d: dct + pixels + merge)
STAGE_SHARES = {"row": 0.75, "layer": 0.25, "dct": 0.2, "pixel": 0.6, "merge": 0.2}  # refine.stage_split


@dataclass(frozen=True)
class StageSettings:
    operator: str = "corrected"  # deepwave | corrected | openfwi (physics/datafit.py)
    n_time: int = MISFIT_TIME  # time samples fitted
    late_weight: float = 0.0  # residual weight grows linearly from 1 at t=0 to 1 + late_weight at the end
    row_iters: int = 60  # flat: row values
    layer_iters: int = 15  # flat: merged layers after rounding
    dct_iters: int = 20  # 2d: cosine correction
    dct_modes: int = 12  # 2d: modes per axis
    pixel_iters: int = 60  # 2d: pixels
    merge_iters: int = 15  # 2d: merged flat regions
    # TV weight per map = this x the start's relative misfit (TV in km/s, smoothed by tv_eps): strong
    # and blunt from a far start, where it pulls smeared interfaces into blocks, weak near the truth,
    # where it would merge thin layers. (A flat 3-layer map from a 4-row blur, misfit ~1e-2: median
    # row error 7.5 m/s after 40 row iterations with a weight 1e-2, 16.7 without TV, 11 at 60 iterations
    # with 1.7e-2 (scale 1); a flat map 1-6
    # m/s off per layer, misfit 3e-4: a fixed 1e-2 merges thin layers, 29 m/s off.)
    row_tv: float = 0.5
    pixel_tv: float = 0.5
    tv_eps: float = 0.01  # km/s
    merge_tol: float = 1.0  # m/s: 2d, neighbouring pixels within this become one region
    layer_tol: float = 2.0  # m/s: flat, neighbouring rows within this (after rounding) become one layer
    merge_accept: float = 1.5  # keep the merged map if its misfit <= this x the pixel fit's
    refresh_every: int = 10  # corrected: iterations between defect refreshes
    tol_grad: float = 1e-12
    tol_change: float = 1e-10
    history: int = 30
    dtype: torch.dtype = torch.float32  # simulation precision of the wide stages (dct, pixels)
    polish_dtype: torch.dtype = torch.float64  # of layers and merged regions: float32 noise stalls fits near 1e-9
    flat_symmetry: float = FLAT_SYMMETRY

    def lbfgs(self, iters: int) -> LbfgsSettings:
        return LbfgsSettings(
            max_iter=iters, history=self.history, tol_grad=self.tol_grad, tol_change=self.tol_change, first_step=0.005
        )


def mirror_rms(observed: torch.Tensor, n_time: int = MISFIT_TIME) -> torch.Tensor:
    """(B, 5, T, 70) -> (B,) rms(seis[0] - seis[4] flipped over receivers): ~0 for laterally invariant maps."""
    left, right = observed[:, 0, :n_time].double(), observed[:, 4, :n_time].double().flip(-1)
    return (left - right).square().mean(dim=(1, 2)).sqrt()


def smoothed_tv(v: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, 70, 70) m/s -> (B,) mean sqrt(dz^2 + dx^2 + eps^2) in km/s."""
    km = v / 1000.0
    dz = km.diff(dim=1)[:, :, :-1]
    dx = km.diff(dim=2)[:, :-1, :]
    return torch.sqrt(dz.square() + dx.square() + eps**2).mean(dim=(1, 2))


class GatherBasis:
    """Each pixel takes one of its map's variables: labels (B, 4900) -> x (B, n), n = most variables.
    x is the logit of (v - 1500) / 3000: bounded velocities, and on a flat 3-layer map from a 4-row
    blur a median row error of 7.5 m/s after 40 iterations against 12.7 with velocities as variables."""

    def __init__(self, labels: torch.Tensor):
        self.labels = labels
        self.n = int(labels.max()) + 1

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """(B, 70, 70) m/s -> (B, n) the least-squares fit (each variable = the mean of its pixels)."""
        flat = v.reshape(len(v), -1).double()
        total = torch.zeros(len(v), self.n, dtype=torch.float64, device=v.device).scatter_add_(1, self.labels, flat)
        count = torch.zeros_like(total).scatter_add_(1, self.labels, torch.ones_like(flat))
        mean = total / count.clamp_min(1)
        return torch.logit(((mean - VMIN) / (VMAX - VMIN)).clamp(1e-6, 1 - 1e-6))

    def velocity(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """(b, n) of maps idx -> (b, 70, 70) m/s."""
        return (VMIN + (VMAX - VMIN) * torch.sigmoid(x.gather(1, self.labels[idx]))).view(len(idx), GRID, GRID)


class CosineBasis:
    """base (B, 70, 70) m/s plus a K x K cosine (DCT-II) correction: x (B, K*K) km/s."""

    def __init__(self, base: torch.Tensor, modes: int):
        self.base = base.double()
        k = torch.arange(modes, dtype=torch.float64, device=base.device)[:, None]
        z = torch.arange(GRID, dtype=torch.float64, device=base.device)[None]
        c = torch.cos(math.pi * (z + 0.5) * k / GRID) * math.sqrt(2.0 / GRID)
        c[0] /= math.sqrt(2.0)
        self.c = c  # (K, 70) orthonormal rows
        self.modes, self.n = modes, modes * modes

    def project(self, v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(v), self.n, dtype=torch.float64, device=v.device)  # the start is the base itself

    def velocity(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        coef = x.view(len(idx), self.modes, self.modes)
        return (self.base[idx] + 1000.0 * self.c.T @ coef @ self.c).clamp(VMIN, VMAX)


def row_labels(b: int, device=None) -> torch.Tensor:
    return torch.arange(GRID, device=device).repeat_interleave(GRID).expand(b, -1).contiguous()


def layer_labels(rows: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
    """(B, 70) row values (m/s) -> (B, 4900) labels: runs of neighbouring rows within tol are one layer."""
    new_layer = torch.cat([torch.zeros(len(rows), 1, dtype=torch.bool, device=rows.device), rows.diff(dim=1).abs() > tol], dim=1)
    return new_layer.long().cumsum(dim=1).repeat_interleave(GRID, dim=1)


def region_labels(v: torch.Tensor, tol: float) -> torch.Tensor:
    """(B, 70, 70) m/s -> (B, 4900) labels of the connected regions whose 4-neighbours differ by <= tol."""
    idx = np.arange(GRID * GRID).reshape(GRID, GRID)
    out = []
    for m in v.detach().cpu().double().numpy():
        down = np.abs(np.diff(m, axis=0)) <= tol
        right = np.abs(np.diff(m, axis=1)) <= tol
        src = np.concatenate([idx[:-1][down], idx[:, :-1][right]])
        dst = np.concatenate([idx[1:][down], idx[:, 1:][right]])
        graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(GRID * GRID, GRID * GRID))
        out.append(connected_components(graph, directed=False)[1])
    return torch.as_tensor(np.stack(out), dtype=torch.long, device=v.device)


@dataclass
class StageRun:
    x: torch.Tensor  # (b, n)
    iterations: torch.Tensor  # (b,)
    failed: torch.Tensor  # (b,) bool
    out_of_time: bool


def run_stage(
    fit: DataFit,
    basis,
    x0: torch.Tensor,
    rows: torch.Tensor,
    iters: int,
    tv: torch.Tensor | None,
    s: StageSettings,
    deadline,
    dtype=None,
    eps: float | None = None,
) -> StageRun:
    """Minimise misfit + tv * TV(eps) (tv (b,) per map, or None) over `basis` for the maps `rows`
    (indices into fit's data), from x0 (b, n), simulating in `dtype` (default s.dtype), eps default s.tv_eps."""
    eps = s.tv_eps if eps is None else eps
    fit.dtype = dtype or s.dtype

    def objective(x: torch.Tensor, idx: torch.Tensor):
        x = x.detach().requires_grad_(True)
        v = basis.velocity(x, idx)
        loss = fit.misfit(v, rows[idx])
        if tv is not None:
            loss = loss + tv[idx] * smoothed_tv(v, eps)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad

    x = x0.double().clone()
    iterations = torch.zeros(len(rows), dtype=torch.long, device=x.device)
    failed = torch.zeros(len(rows), dtype=torch.bool, device=x.device)
    rounds = max(1, math.ceil(iters / s.refresh_every)) if fit.operator == "corrected" else 1
    left = iters
    for _ in range(rounds):
        if left <= 0:
            break
        live = torch.nonzero(~failed).flatten()
        if len(live) == 0:
            break
        if fit.operator == "corrected":
            if deadline is not None and time.monotonic() >= deadline:
                return StageRun(x, iterations, failed, True)
            with torch.no_grad():
                fit.refresh(basis.velocity(x[live], live), rows[live])
        n = min(left, s.refresh_every) if fit.operator == "corrected" else left

        def sub(xs, idx, live=live):
            return objective(xs, live[idx])

        result = minimize(sub, x[live], settings=s.lbfgs(n), deadline=deadline)
        x[live] = result.x
        iterations[live] += result.iterations
        failed[live] |= result.failed
        left -= n
        if OUT_OF_TIME in result.status:
            return StageRun(x, iterations, failed, True)
        if fit.operator == "corrected" and all(st == CONVERGED for st in result.status) and int(result.iterations.max()) <= 1:
            break  # a refresh no longer moves anything
    return StageRun(x, iterations, failed, False)


@dataclass
class StagedResult:
    velocity: torch.Tensor  # (B, 70, 70) m/s: the refined maps (the start where refinement did not fit better)
    kinds: list[str]  # per map: flat / 2d
    misfit_before: torch.Tensor  # (B,) relative misfit of the start under the operator
    misfit_after: torch.Tensor  # (B,)
    iterations: torch.Tensor  # (B,) over all stages
    failed: torch.Tensor  # (B,) bool: the objective was not finite (the start is kept)
    out_of_time: bool = False
    stages: list[str] = field(default_factory=list)  # per map: the stages it went through
    seconds: float = 0.0


def _misfit(fit: DataFit, v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(b,) relative misfit under the operator's own accuracy: the exact scheme unless "deepwave"."""
    fit.dtype = torch.float64
    with torch.no_grad():
        if fit.operator == "deepwave":
            return fit.misfit(v, rows)
        return fit.exact_misfit(v, rows)


def refine_staged(
    start: torch.Tensor, observed: torch.Tensor, settings: StageSettings | None = None, *, deadline: float | None = None
) -> StagedResult:
    """Refine B maps (B, 70, 70) m/s against their records (B, 5, >= n_time, 70), on the CPU or start's device."""
    s = settings or StageSettings()
    t0 = time.perf_counter()
    device = start.device
    start = start.double().clamp(VMIN, VMAX)
    observed = observed.to(device)
    weight = None
    if s.late_weight:
        weight = 1.0 + s.late_weight * torch.linspace(0.0, 1.0, s.n_time, dtype=torch.float64, device=device)
    fit = DataFit(observed, s.operator, n_time=s.n_time, time_weight=weight)
    n_maps = len(start)
    everyone = torch.arange(n_maps, device=device)
    if deadline is not None:
        # under a deadline: a deepwave forward prices the work; without time for a gradient evaluation
        # and (other operators) two exact forwards, every map keeps its start, its misfit by deepwave
        quick = DataFit(observed, "deepwave", n_time=s.n_time, time_weight=weight)
        t_forward = time.monotonic()
        quick_before = _misfit(quick, start, everyone)
        cost = (time.monotonic() - t_forward) * (GRADIENT_COST + (0 if s.operator == "deepwave" else 2 * EXACT_COST))
        if time.monotonic() + cost > deadline:
            return StagedResult(
                start.float(),
                ["unrefined"] * n_maps,
                quick_before,
                quick_before,
                torch.zeros(n_maps, dtype=torch.long, device=device),
                ~torch.isfinite(quick_before),
                True,
                ["out-of-time"] * n_maps,
                time.perf_counter() - t0,
            )
    before = _misfit(fit, start, everyone)
    kinds = [FLAT if f else TWO_D for f in (mirror_rms(observed, s.n_time) < s.flat_symmetry).tolist()]
    arange = lambda b: torch.arange(b, device=device)  # noqa: E731
    velocity = start.clone()
    iterations = torch.zeros(n_maps, dtype=torch.long, device=device)
    failed = ~torch.isfinite(before)
    log = [[] for _ in range(n_maps)]
    out_of_time = False

    def stage(name, basis, x0, rows, iters, tv, dtype=None, eps=None):
        nonlocal out_of_time
        if out_of_time or iters <= 0 or len(rows) == 0:
            return x0
        run = run_stage(fit, basis, x0, rows, iters, tv, s, deadline, dtype, eps)
        iterations[rows] += run.iterations
        failed[rows] |= run.failed
        out_of_time = run.out_of_time
        for i, r in enumerate(rows.tolist()):
            log[r].append(f"{name}:{int(run.iterations[i])}")
        return run.x

    flat = torch.tensor([k == FLAT for k in kinds], device=device) & ~failed
    rows = torch.nonzero(flat).flatten()
    if len(rows):
        basis = GatherBasis(row_labels(len(rows), device))
        x = stage("rows", basis, basis.project(start[rows]), rows, s.row_iters, s.row_tv * before[rows])
        rounded = basis.velocity(x, arange(len(rows))).round()  # (b, 70, 70) whole m/s
        layers = GatherBasis(layer_labels(rounded[:, :, 0], s.layer_tol))
        x = stage("layers", layers, layers.project(rounded), rows, s.layer_iters, None, s.polish_dtype)
        velocity[rows] = (layers.velocity(x, arange(len(rows))).round()).clamp(VMIN, VMAX)
    two_d = torch.nonzero(~flat & ~failed).flatten()
    if len(two_d):
        local = arange(len(two_d))
        cosine = CosineBasis(start[two_d], s.dct_modes)
        x = stage("dct", cosine, cosine.project(start[two_d]), two_d, s.dct_iters, None)
        pixels_start = cosine.velocity(x, local)
        pixel = GatherBasis(arange(GRID * GRID).expand(len(two_d), -1).contiguous())
        x = stage("pixels", pixel, pixel.project(pixels_start), two_d, s.pixel_iters, s.pixel_tv * before[two_d])
        pixel_map = pixel.velocity(x, local)
        velocity[two_d] = pixel_map
        if s.merge_iters > 0 and not out_of_time:
            regions = GatherBasis(region_labels(pixel_map, s.merge_tol))
            x = stage("merge", regions, regions.project(pixel_map), two_d, s.merge_iters, None, s.polish_dtype)
            merged = regions.velocity(x, local).round().clamp(VMIN, VMAX)
            keep = _misfit(fit, merged, two_d) <= s.merge_accept * _misfit(fit, pixel_map, two_d)
            velocity[two_d[keep]] = merged[keep]
            for r in two_d[~keep].tolist():
                log[r].append("merge-rejected")
    after = before.clone()
    changed = torch.nonzero((velocity != start).flatten(1).any(dim=1)).flatten()
    if len(changed):  # an exact forward per map: only where something moved
        after[changed] = _misfit(fit, velocity[changed], changed)
    worse = ~(after <= before) | failed
    velocity[worse] = start[worse]
    after = torch.where(worse, before, after)
    for r in torch.nonzero(worse).flatten().tolist():
        log[r].append("kept-start")
    return StagedResult(
        velocity.float(),
        kinds,
        before,
        after,
        iterations,
        failed,
        out_of_time,
        ["+".join(x) for x in log],
        time.perf_counter() - t0,
    )
