"""The OpenFWI scheme (physics/openfwi.py) with a memory-lean gradient: a hand-written adjoint
over checkpointed time steps, batched over maps, float32 or float64.

Forward, per step n (p^0 = p^-1 = 0, a = 2 - kappa dt, b = 1 - kappa dt, alpha = (v dt / dx)^2):
    p^{n+1} = a p^n - b p^{n-1} + alpha L[p^n] + beta_s w_n delta_s,   r_n = S p^{n+1}
with L the 4th-order Laplacian on the circularly wrapped padded grid (symmetric: L^T = L) and
beta_s = (v_s dt)^2 at each source. The scheme is linear in p, so the adjoint runs the same
recursion backwards with the residual as its source:
    mu^k = S^T g_{k-1} + a mu^{k+1} + L[alpha mu^{k+1}] - b mu^{k+2}
    dJ/dalpha = sum_n mu^{n+1} L[p^n] (over shots),   dJ/dbeta_s = sum_n mu^{n+1}[s] w_n.
The forward keeps (p^{n-1}, p^n) only every `segment` steps; the backward recomputes one
segment at a time: memory ~ (2 nt / segment + segment) wavefields instead of nt, for about
one extra forward. kappa depends on each map's minimum velocity, which is held fixed (its
gradient is ignored, as a kink in a single pixel): pass `vmin` to pin it.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from kagglekit.fwi.constants import DT, DX, N_RECEIVERS, N_TIME, RECEIVER_DEPTH_ROW, SOURCE_COLUMNS, SOURCE_DEPTH_ROW
from kagglekit.fwi.physics.openfwi import C0, C1, C2, NBC, damping_profile
from kagglekit.fwi.physics.wavelet import ricker_openfwi


def laplacian(p: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> L4[p] over the last two axes, wrapping around (unit grid spacing)."""
    return _Stencil(p).apply(p, torch.empty_like(p))


@contextlib.contextmanager
def flush_denormals():
    """Treat subnormal floats as zero while inside. The finite-difference field ahead of each
    wavefront decays into subnormals, which the CPU handles ~10x slower; the flag is per thread,
    so the CPU runs on this thread alone meanwhile (measured: 0.65 s per float32 forward, steady,
    against 2-15 s with two intra-op threads)."""
    supported = torch.set_flush_denormal(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if supported:
            torch.set_flush_denormal(False)


class _Stencil:
    """L4 with circular wrap into preallocated buffers: fresh multi-megabyte tensors every step
    cost page faults that made a forward 10-20x slower than its arithmetic."""

    def __init__(self, like: torch.Tensor):
        n, c, h, w = like.shape
        self.pp = like.new_empty(n, c, h + 4, w + 4)
        self.far = like.new_empty(n, c, h, w)

    def apply(self, p: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        pp, far = self.pp, self.far
        pp[..., 2:-2, 2:-2] = p
        pp[..., :2, 2:-2] = p[..., -2:, :]
        pp[..., -2:, 2:-2] = p[..., :2, :]
        pp[..., :, :2] = pp[..., :, -4:-2]
        pp[..., :, -2:] = pp[..., :, 2:4]
        torch.add(pp[..., 1:-3, 2:-2], pp[..., 3:-1, 2:-2], out=out)
        out += pp[..., 2:-2, 1:-3]
        out += pp[..., 2:-2, 3:-1]
        torch.add(pp[..., :-4, 2:-2], pp[..., 4:, 2:-2], out=far)
        far += pp[..., 2:-2, :-4]
        far += pp[..., 2:-2, 4:]
        out.mul_(C1).add_(far, alpha=C2)
        return out.add_(p, alpha=2.0 * C0)


class _Geometry:
    """Indices of sources and receivers on the padded grid (border width w)."""

    def __init__(self, w: int, device: torch.device):
        self.w = w
        self.sz, self.rz = SOURCE_DEPTH_ROW + w, RECEIVER_DEPTH_ROW + w
        self.sx = torch.tensor(SOURCE_COLUMNS, device=device) + w
        self.shots = torch.arange(len(SOURCE_COLUMNS), device=device)

    def record(self, p: torch.Tensor) -> torch.Tensor:
        """(B, 5, H, W) -> (B, 5, 70) at the receivers."""
        return p[:, :, self.rz, self.w : self.w + N_RECEIVERS]

    def sources(self, p: torch.Tensor) -> torch.Tensor:
        """(B, 5, H, W) -> (B, 5): each shot's wavefield at its own source."""
        return p[:, self.shots, self.sz, self.sx]


class _Propagator:
    """The forward recursion in place over three buffers: step() turns p_prev into p^{n+1}."""

    def __init__(self, a, b, alpha, geo: _Geometry, like: torch.Tensor):
        self.a, self.b, self.alpha, self.geo = a, b, alpha, geo
        self.stencil = _Stencil(like)
        self.lap = torch.empty_like(like)

    def step(self, p_prev: torch.Tensor, p_cur: torch.Tensor, src: torch.Tensor, lap_out: torch.Tensor | None = None):
        """p_prev <- a p_cur - b p_prev + alpha L[p_cur] + src at the sources; returns (p_cur, p_next).
        lap_out, when given, receives L[p_cur]."""
        lap = self.stencil.apply(p_cur, self.lap if lap_out is None else lap_out)
        p_prev.mul_(-self.b).addcmul_(self.a, p_cur).addcmul_(self.alpha, lap)
        p_prev[:, self.geo.shots, self.geo.sz, self.geo.sx] += src
        return p_cur, p_prev


class _ExactRecords(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha, beta, kdt, wavelet, nt: int, w: int, segment: int):
        # alpha, kdt (B, 1, H, W); beta (B, 5); wavelet (nt,)
        geo = _Geometry(w, alpha.device)
        a, b = 2.0 - kdt, 1.0 - kdt
        n_models, _, h, wid = alpha.shape
        p_prev = alpha.new_zeros(n_models, len(SOURCE_COLUMNS), h, wid)
        p_cur = torch.zeros_like(p_prev)
        prop = _Propagator(a, b, alpha, geo, p_prev)
        keep = any(ctx.needs_input_grad)
        checkpoints = []
        records = alpha.new_empty(n_models, len(SOURCE_COLUMNS), nt, N_RECEIVERS)
        src = beta[None] * wavelet.view(nt, 1, 1)  # (nt, B, 5)
        with flush_denormals():
            for n in range(nt):
                if keep and n % segment == 0:
                    checkpoints.append((p_prev.clone(), p_cur.clone()))
                p_prev, p_cur = prop.step(p_prev, p_cur, src[n])
                records[:, :, n] = geo.record(p_cur)
        ctx.save_for_backward(alpha, beta, kdt, wavelet)
        ctx.checkpoints, ctx.nt, ctx.w, ctx.segment = checkpoints, nt, w, segment
        return records

    @staticmethod
    def backward(ctx, grad_records):
        alpha, beta, kdt, wavelet = ctx.saved_tensors
        nt, segment = ctx.nt, ctx.segment
        geo = _Geometry(ctx.w, alpha.device)
        a, b = 2.0 - kdt, 1.0 - kdt
        grad_records = grad_records.to(alpha.dtype)
        like = ctx.checkpoints[0][0]
        prop = _Propagator(a, b, alpha, geo, like)
        laps = like.new_empty(min(segment, nt), *like.shape)  # L[p^n] over one segment
        mu = torch.zeros_like(like)  # mu^{n+2}, starts as mu^{nt+1} = 0
        mu_next = torch.zeros_like(like)  # mu^{n+3}
        scaled = torch.empty_like(like)
        grad_alpha = torch.zeros_like(like)  # (B, 5, H, W), summed over shots at the end
        grad_src = alpha.new_zeros(nt, *beta.shape)  # (nt, B, 5): dJ/d(beta_s w_n)
        src = beta[None] * wavelet.view(nt, 1, 1)
        rz, cols = geo.rz, slice(geo.w, geo.w + N_RECEIVERS)
        with flush_denormals():
            for seg in reversed(range(len(ctx.checkpoints))):
                n0, n1 = seg * segment, min(nt, (seg + 1) * segment)
                p_prev, p_cur = (t.clone() for t in ctx.checkpoints[seg])
                for n in range(n0, n1):  # recompute L[p^n] of the segment
                    p_prev, p_cur = prop.step(p_prev, p_cur, src[n], lap_out=laps[n - n0])
                for n in reversed(range(n0, n1)):
                    # mu^{n+1} = S^T g_n + a mu^{n+2} + L[alpha mu^{n+2}] - b mu^{n+3}, into mu_next's buffer
                    lap = prop.stencil.apply(torch.mul(alpha, mu, out=scaled), prop.lap)
                    mu_next.mul_(-b).addcmul_(a, mu).add_(lap)
                    mu_next[:, :, rz, cols] += grad_records[:, :, n]
                    mu, mu_next = mu_next, mu
                    grad_alpha.addcmul_(mu, laps[n - n0])
                    grad_src[n] = geo.sources(mu)
        grad_beta = (grad_src * wavelet.view(nt, 1, 1)).sum(dim=0)
        ctx.checkpoints = None
        return grad_alpha.sum(dim=1, keepdim=True), grad_beta, None, None, None, None, None


def simulate_exact(
    velocity: torch.Tensor,
    nt: int = N_TIME,
    *,
    dtype: torch.dtype = torch.float32,
    vmin: torch.Tensor | None = None,
    segment: int | None = None,
) -> torch.Tensor:
    """(B, 70, 70) m/s -> (B, 5, nt, 70) records of the OpenFWI scheme, differentiable in velocity
    through the adjoint (the same values as simulate_openfwi). vmin (B,) pins the damping's
    minimum velocity (default: each map's own); segment = time steps between checkpoints
    (default ~sqrt(2 nt), the least memory)."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"simulate_exact: dtype must be float32 or float64, got {dtype}")
    v = velocity.to(dtype)
    if v.ndim != 3 or v.shape[-2:] != (70, 70):
        raise ValueError(f"simulate_exact expects velocity (B, 70, 70), got {tuple(v.shape)}")
    n_models, nz, nx = v.shape
    w = NBC
    vel = F.pad(v[:, None], (w, w, w, w), mode="replicate")  # (B, 1, H, W)
    floor = v.detach().amin(dim=(1, 2)) if vmin is None else vmin.detach().to(v.device, dtype)
    kdt = torch.as_tensor(damping_profile(nz, nx, NBC), dtype=dtype, device=v.device) * floor.view(n_models, 1, 1, 1) * DT
    alpha = (vel * DT / DX) ** 2
    geo = _Geometry(w, v.device)
    beta = (vel[:, 0, geo.sz, geo.sx] * DT) ** 2  # (B, 5)
    wavelet = torch.as_tensor(ricker_openfwi(nt), dtype=dtype, device=v.device)
    seg = segment or max(1, round(math.sqrt(2 * nt)))
    return _ExactRecords.apply(alpha, beta, kdt.expand_as(alpha).contiguous(), wavelet, nt, w, seg)
