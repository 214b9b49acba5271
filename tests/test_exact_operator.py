"""The OpenFWI scheme's hand-written adjoint (physics/exact.py): the same records as the scheme
itself, and gradients that match finite differences and autograd through the scheme."""

import pytest
import torch
import torch.nn.functional as F

from kagglekit.fwi.physics.exact import simulate_exact
from kagglekit.fwi.physics.openfwi import simulate_openfwi

NT = 140  # enough steps for the wavelet (peak at sample 73) to reach every receiver near the sources


def _smooth_map(seed: int, n: int = 2, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = 2000 + 1500 * torch.rand(n, 1, 70, 70, generator=g, dtype=dtype)
    return F.avg_pool2d(v, 7, 1, 3, count_include_pad=False)[:, 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_records_equal_the_scheme(dtype):
    v = _smooth_map(0)
    with torch.no_grad():
        exact = simulate_exact(v, NT, dtype=dtype)
        scheme = simulate_openfwi(v, NT, dtype=dtype)
    assert exact.dtype == dtype and exact.shape == (2, 5, NT, 70)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (exact - scheme).abs().max() <= tol * scheme.abs().max()


def test_gradient_matches_autograd_through_the_scheme():
    v = _smooth_map(1)
    weights = torch.randn(2, 5, NT, 70, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grads = []
    for fn in (simulate_exact, simulate_openfwi):
        x = v.clone().requires_grad_(True)
        (fn(x, NT, dtype=torch.float64) * weights).sum().backward()
        grads.append(x.grad)
    assert grads[0].abs().max() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-9, atol=1e-12 * grads[1].abs().max())


@pytest.mark.parametrize("segment", [1, 7, 200])
def test_gradient_matches_finite_differences(segment):
    """Directional derivatives of a misfit, float64, central differences; vmin pinned so the damping
    (which depends on the minimum velocity, held fixed by design) does not move."""
    v = _smooth_map(3)
    observed = simulate_exact(_smooth_map(4), NT, dtype=torch.float64).detach()
    vmin = v.amin(dim=(1, 2))

    def loss(x):
        return (simulate_exact(x, NT, dtype=torch.float64, vmin=vmin, segment=segment) - observed).square().sum()

    x = v.clone().requires_grad_(True)
    loss(x).backward()
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        direction = torch.randn(v.shape, dtype=torch.float64, generator=g)
        h = 1e-3  # m/s
        with torch.no_grad():
            fd = (loss(v + h * direction) - loss(v - h * direction)) / (2 * h)
        analytic = (x.grad * direction).sum()
        assert abs(float(fd - analytic)) <= 1e-6 * abs(float(analytic))


def test_float32_gradient_close_to_float64():
    v = _smooth_map(6)
    observed = simulate_exact(_smooth_map(7), NT, dtype=torch.float64).detach()
    grads = []
    for dtype in (torch.float32, torch.float64):
        x = v.clone().to(dtype).requires_grad_(True)
        (simulate_exact(x, NT, dtype=dtype) - observed.to(dtype)).square().sum().backward()
        grads.append(x.grad.double())
    assert (grads[0] - grads[1]).norm() <= 1e-3 * grads[1].norm()
