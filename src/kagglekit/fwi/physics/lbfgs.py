"""L-BFGS with one problem per row: B maps optimised together, each with its own history, step,
backtracking Armijo line search and stopping rule, vectorised over the batch.

The objective takes the rows still being searched, `objective(x (b, n), rows (b,)) -> (f (b,),
grad (b, n))`, so a batch costs what its busy maps cost and a map's path never depends on its
neighbours: a batch gives each map what it gets alone (tests/test_lbfgs.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

RUNNING, CONVERGED, MAX_ITER, LINE_SEARCH, NOT_FINITE, OUT_OF_TIME = (
    "running",
    "converged",
    "max_iter",
    "line_search",
    "not_finite",
    "out_of_time",
)


@dataclass(frozen=True)
class LbfgsSettings:
    max_iter: int = 100  # iterations per map
    history: int = 30  # pairs kept per map
    tol_grad: float = 1e-10  # stop when max |grad| falls below this
    tol_change: float = 1e-9  # stop when |f change| <= tol_change |f| or max |step| <= tol_change
    first_step: float = 0.01  # length (max norm, in x units) of a step without curvature history
    c1: float = 1e-4  # Armijo's sufficient decrease
    shrink: float = 0.3  # step factor per backtrack
    max_backtracks: int = 12


@dataclass
class LbfgsResult:
    x: torch.Tensor  # (B, n) the last accepted point of every map
    f: torch.Tensor  # (B,)
    iterations: torch.Tensor  # (B,) long
    evaluations: torch.Tensor  # (B,) long
    status: list[str]  # per map: converged / max_iter / line_search / not_finite / out_of_time

    @property
    def failed(self) -> torch.Tensor:
        """(B,) bool: the objective or gradient was not finite at the map's start."""
        return torch.tensor([st == NOT_FINITE for st in self.status], device=self.x.device)

    @property
    def out_of_time(self) -> bool:
        return OUT_OF_TIME in self.status


def _direction(g, S, Y, rho, n_valid, gamma):
    """Two-loop recursion per row: (B, n) gradient, (B, m, n) pairs (the last n_valid are valid) -> -H g."""
    m = S.shape[1]
    q = g.clone()
    alphas = []
    for j in reversed(range(m)):
        valid = (j >= m - n_valid).to(g.dtype)  # (B,)
        a = rho[:, j] * (S[:, j] * q).sum(dim=1) * valid
        q -= a[:, None] * Y[:, j]
        alphas.append(a)
    r = gamma[:, None] * q
    for j, a in zip(range(m), reversed(alphas), strict=True):
        valid = (j >= m - n_valid).to(g.dtype)
        b = rho[:, j] * (Y[:, j] * r).sum(dim=1) * valid
        r += S[:, j] * (a - b)[:, None]
    return -r


def minimize(
    objective: Objective,
    x0: torch.Tensor,
    max_iter: int | None = None,
    *,
    settings: LbfgsSettings | None = None,
    history: int | None = None,
    deadline: float | None = None,
    check: Callable[[], None] | None = None,
    stop: type[Exception] | None = None,
) -> LbfgsResult:
    """Minimise B independent problems from x0 (B, n); max_iter / history override `settings`.
    Time limits, either: `deadline` (time.monotonic()): no evaluation starts that would end after
    it (by the last one's measured cost); or `check()`, called before every evaluation, raising
    `stop` when time is up. Either way the maps keep their last accepted point (status out_of_time)."""
    s = settings or LbfgsSettings()
    if max_iter is not None or history is not None:
        s = replace(s, max_iter=s.max_iter if max_iter is None else max_iter, history=s.history if history is None else history)
    n_maps, n = x0.shape
    device, dtype = x0.device, x0.dtype
    all_rows = torch.arange(n_maps, device=device)
    evals = torch.zeros(n_maps, dtype=torch.long, device=device)
    cost = [0.0]

    def evaluate(x, rows):
        if deadline is not None and time.monotonic() + cost[0] > deadline:
            return None
        if check is not None:
            try:
                check()
            except stop or ():  # noqa: B030 - the caller's own out-of-time exception
                return None
        t0 = time.monotonic()
        f, g = objective(x, rows)
        cost[0] = time.monotonic() - t0
        evals[rows] += 1
        return f.detach().to(dtype), g.detach().to(dtype)

    x = x0.detach().clone()
    status = [RUNNING] * n_maps
    first = evaluate(x, all_rows)
    if first is None:
        return LbfgsResult(x, torch.full((n_maps,), float("inf"), dtype=dtype), evals * 0, evals, [OUT_OF_TIME] * n_maps)
    f, g = first
    bad = ~(torch.isfinite(f) & torch.isfinite(g).all(dim=1))
    for i in torch.nonzero(bad).flatten().tolist():
        status[i] = NOT_FINITE
    m = s.history
    S = torch.zeros(n_maps, m, n, dtype=dtype, device=device)
    Y = torch.zeros_like(S)
    rho = torch.zeros(n_maps, m, dtype=dtype, device=device)
    n_valid = torch.zeros(n_maps, dtype=torch.long, device=device)
    gamma = torch.ones(n_maps, dtype=dtype, device=device)
    iters = torch.zeros(n_maps, dtype=torch.long, device=device)
    done = ~torch.tensor([st == RUNNING for st in status], device=device)
    done |= g.abs().amax(dim=1) <= s.tol_grad
    for i in torch.nonzero(done & ~bad).flatten().tolist():
        status[i] = CONVERGED
    while not bool(done.all()):
        act = torch.nonzero(~done).flatten()  # rows still running
        ga = g[act]
        d = _direction(ga, S[act], Y[act], rho[act], n_valid[act], gamma[act])
        slope = (ga * d).sum(dim=1)
        # no history or not a descent direction: a steepest-descent step of length first_step
        fresh = (n_valid[act] == 0) | ~(slope < 0) | ~torch.isfinite(slope)
        if bool(fresh.any()):
            steep = -ga * (s.first_step / ga.abs().amax(dim=1, keepdim=True).clamp_min(1e-300))
            d = torch.where(fresh[:, None], steep, d)
            n_valid[act[fresh]] = 0
            slope = (ga * d).sum(dim=1)
        t = torch.ones(len(act), dtype=dtype, device=device)
        searching = torch.ones(len(act), dtype=torch.bool, device=device)
        f_new = f[act].clone()
        g_new = ga.clone()
        out_of_time = False
        for _ in range(s.max_backtracks + 1):
            idx = torch.nonzero(searching).flatten()
            if len(idx) == 0:
                break
            trial = evaluate(x[act[idx]] + t[idx, None] * d[idx], act[idx])
            if trial is None:
                out_of_time = True
                break
            ft, gt = trial
            ok = torch.isfinite(ft) & torch.isfinite(gt).all(dim=1) & (ft <= f[act[idx]] + s.c1 * t[idx] * slope[idx])
            f_new[idx[ok]], g_new[idx[ok]] = ft[ok], gt[ok]
            searching[idx[ok]] = False
            t[idx[~ok]] *= s.shrink
        accepted = ~searching
        if out_of_time:
            for i in act[searching].tolist():
                status[i] = OUT_OF_TIME
            done[act[searching]] = True
        else:
            for i in act[searching].tolist():
                status[i] = LINE_SEARCH
            done[act[searching]] = True
        rows = act[accepted]
        if len(rows) == 0:
            if out_of_time:
                break
            continue
        step = t[accepted, None] * d[accepted]  # (b, n)
        y = g_new[accepted] - g[rows]
        sy = (step * y).sum(dim=1)
        keep = sy > 1e-10 * step.norm(dim=1) * y.norm(dim=1)  # curvature condition: only then a new pair
        upd = rows[keep]
        if len(upd):
            S[upd] = torch.cat([S[upd, 1:], step[keep, None]], dim=1)
            Y[upd] = torch.cat([Y[upd, 1:], y[keep, None]], dim=1)
            rho[upd] = torch.cat([rho[upd, 1:], (1.0 / sy[keep])[:, None]], dim=1)
            n_valid[upd] = (n_valid[upd] + 1).clamp_max(m)
            gamma[upd] = sy[keep] / y[keep].square().sum(dim=1)
        f_old = f[rows]
        x[rows] += step
        f[rows], g[rows] = f_new[accepted], g_new[accepted]
        iters[rows] += 1
        conv = (g[rows].abs().amax(dim=1) <= s.tol_grad) | ((f_old - f[rows]).abs() <= s.tol_change * f_old.abs())
        conv |= step.abs().amax(dim=1) <= s.tol_change
        for i in rows[conv].tolist():
            status[i] = CONVERGED
        limit = (iters[rows] >= s.max_iter) & ~conv
        for i in rows[limit].tolist():
            status[i] = MAX_ITER
        done[rows[conv | limit]] = True
        if out_of_time:
            for i in torch.nonzero(~done).flatten().tolist():
                status[i] = OUT_OF_TIME
            break
    return LbfgsResult(x, f, iters, evals, status)
