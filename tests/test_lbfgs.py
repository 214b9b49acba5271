"""Per-map L-BFGS (physics/lbfgs.py): every problem its own history, step, line search and stop."""

import time

import torch

from kagglekit.fwi.physics.lbfgs import CONVERGED, NOT_FINITE, OUT_OF_TIME, LbfgsSettings, minimize


def _problems(n: int = 5, dim: int = 8):
    """n scaled Rosenbrock-like problems of very different conditioning: (x, idx) -> (f, grad)."""
    gen = torch.Generator().manual_seed(1)
    scale = torch.logspace(-2, 3, n, dtype=torch.float64)  # problem i is scale[i] times as steep
    shift = torch.randn(n, dim, generator=gen, dtype=torch.float64)

    def f(x, idx):
        x = x.clone().requires_grad_(True)
        y = x - shift[idx]
        value = scale[idx] * ((y[:, 1:] - y[:, :-1] ** 2).square().sum(1) * 10 + (1 - y).square().sum(1))
        value.sum().backward()
        return value.detach(), x.grad

    return f, shift


def test_a_batch_gives_each_map_what_it_gets_alone():
    f, shift = _problems()
    x0 = shift + 0.5
    settings = LbfgsSettings(max_iter=200, tol_grad=1e-9, tol_change=1e-14)
    batch = minimize(f, x0, settings=settings)
    for i in range(len(x0)):
        alone = minimize(lambda x, idx, i=i: f(x, idx + i), x0[i : i + 1], settings=settings)
        assert torch.equal(batch.x[i], alone.x[0])
        assert int(batch.iterations[i]) == int(alone.iterations[0])
        assert int(batch.evaluations[i]) == int(alone.evaluations[0])
        assert batch.status[i] == alone.status[0]
    # every problem converged to its own minimum (y = 1), whatever the others' steepness
    assert batch.status == [CONVERGED] * len(x0)
    torch.testing.assert_close(batch.x - shift, torch.ones_like(x0), atol=1e-4, rtol=0)


def test_a_map_not_finite_at_its_start_fails_alone():
    f, shift = _problems(3)

    def g(x, idx):
        value, grad = f(x, idx)
        value[idx == 1] = float("nan")
        return value, grad

    result = minimize(g, shift + 0.5, settings=LbfgsSettings(max_iter=50))
    assert result.status[1] == NOT_FINITE and result.failed.tolist() == [False, True, False]
    assert result.status[0] != NOT_FINITE and int(result.iterations[0]) > 5
    assert int(result.iterations[1]) == 0 and torch.equal(result.x[1], shift[1] + 0.5)


def test_a_deadline_stops_every_map_at_its_last_accepted_point():
    f, shift = _problems(2)

    def slow(x, idx):
        time.sleep(0.05)
        return f(x, idx)

    result = minimize(slow, shift + 0.5, settings=LbfgsSettings(max_iter=10_000), deadline=time.monotonic() + 0.5)
    assert result.status == [OUT_OF_TIME, OUT_OF_TIME] and result.out_of_time
    value, _ = f(result.x, torch.arange(2))
    torch.testing.assert_close(value, result.f)  # the reported point is the one whose value is reported
