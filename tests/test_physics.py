"""The deepwave simulator against our own OpenFWI finite-difference reference, and its physics."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from kagglekit.fwi.constants import FAMILIES, SOURCE_COLUMNS
from kagglekit.fwi.data import flip_velocity
from kagglekit.fwi.physics import generate_family, ricker_openfwi, simulate
from kagglekit.fwi.physics.openfwi import simulate_openfwi


def test_ricker_matches_openfwi_definition():
    w = ricker_openfwi(1000)
    assert np.count_nonzero(w) == 147
    assert int(np.argmax(w)) == 73
    assert w[73] == pytest.approx(1.0)


def layered_to_4500():
    v = np.full((70, 70), 1800.0, np.float32)
    v[20:45] = 3200.0
    v[45:] = 4500.0
    return v


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, velocity",
    [
        ("layered up to 4500", layered_to_4500()),
        ("faulted", generate_family("CurveFault_B", 1, 11)[0]),
        ("smooth", generate_family("Style_A", 1, 5)[0]),
    ],
)
def test_deepwave_matches_the_openfwi_scheme(name, velocity):
    """Relative L2 <= 0.5% over the whole record.

    The OpenFWI border is widened (same ramp, `extra` cells) so that nothing that entered it
    comes back within 1 s: the OpenFWI code's finite, wrapped border leaks late returns that a
    PML cannot reproduce (test below).
    """
    ref = simulate_openfwi(torch.from_numpy(velocity[None]), extra=120, periodic=False)[0].double().numpy()
    out = simulate(torch.from_numpy(velocity[None]))[0].double().numpy()
    rel = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    assert rel <= 0.005, f"{name}: relative L2 {rel:.4f}"


def test_simulate_shapes_batching_and_gradient():
    v = torch.as_tensor(generate_family("FlatVel_A", 2, 0))
    batched = simulate(v)
    assert batched.shape == (2, 5, 1000, 70) and batched.dtype == torch.float32
    torch.testing.assert_close(simulate(v[1:]), batched[1:], rtol=1e-5, atol=1e-5)
    v_req = v[:1].clone().requires_grad_(True)
    simulate(v_req).square().sum().backward()
    assert v_req.grad is not None and torch.isfinite(v_req.grad).all() and v_req.grad.abs().sum() > 0


def test_simulate_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(B, 70, 70\)"):
        simulate(torch.full((1, 70, 69), 2000.0))
    bad = torch.full((1, 70, 70), 2000.0)
    bad[0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        simulate(bad)
    with pytest.raises(ValueError, match="4500"):
        simulate(torch.full((1, 70, 70), 6000.0))


def test_flip_consistency_for_mirrored_sources():
    """simulate(flip(v)) equals the mirrored record of the mirror source (sources 0<->4, 1<->3)."""
    v = torch.as_tensor(generate_family("CurveFault_A", 1, 2))
    direct = simulate(v)[0]  # (5, 1000, 70)
    mirrored = simulate(flip_velocity(v))[0]
    for s, m in ((0, 4), (1, 3), (3, 1), (4, 0)):
        assert SOURCE_COLUMNS[s] + SOURCE_COLUMNS[m] == 69
        rel = (mirrored[s] - direct[m].flip(-1)).norm() / direct[m].norm()
        assert rel < 1e-4
    # the middle source maps 34 -> 35: a one-column source shift, far from exact near the source
    rel_mid = (mirrored[2] - direct[2].flip(-1)).norm() / direct[2].norm()
    assert rel_mid > 1e-2


def test_direct_wave_travels_at_top_velocity():
    """Peak-time difference of the direct wave between two offsets = distance / velocity."""
    velocity = 2500.0
    record = simulate(torch.full((1, 70, 70), velocity))[0, 0]  # source at column 0
    picks = {}
    for receiver in (20, 60):
        trace = record[:, receiver].abs()
        picks[receiver] = int(trace.argmax())
    expected_ms = (60 - 20) * 10.0 / velocity * 1000
    assert abs((picks[60] - picks[20]) - expected_ms) <= 3
    # and the absolute arrival: wavelet peak (73 ms) + offset / v, within a few ms
    assert abs(picks[60] - (73 + 600 / velocity * 1000)) <= 6


@pytest.mark.parametrize("family", FAMILIES)
def test_families_range_shape_and_seed(family):
    a = generate_family(family, 4, seed=1)
    assert a.shape == (4, 70, 70) and a.dtype == np.float32
    assert a.min() >= 1500 and a.max() <= 4500
    assert np.array_equal(a, generate_family(family, 4, seed=1))
    assert not np.array_equal(a, generate_family(family, 4, seed=2))
    assert a.std(axis=(1, 2)).min() > 0  # never a constant map


def test_family_traits():
    flat = generate_family("FlatVel_A", 8, 0)
    assert np.all(np.ptp(flat, axis=2) == 0)  # constant along x
    monotone = np.all(np.diff(flat[:, :, 0], axis=1) >= 0)
    assert monotone  # A: velocity increases with depth
    curve = generate_family("CurveVel_B", 8, 0)
    assert np.any(curve.std(axis=2) > 0)
    style = generate_family("Style_B", 8, 0)
    assert len(np.unique(style[0])) > 1000  # a continuous texture, not layers
    with pytest.raises(KeyError, match="valid"):
        generate_family("Salt_A", 1, 0)


@pytest.mark.slow
def test_openfwi_backend_has_the_late_border_leak_that_deepwave_lacks():
    """A slow top over a fast half-space: waves run through the fast, weakly damped side borders
    (damping scales with the model's minimum velocity), wrap around and return after ~600 ms."""
    v = torch.full((1, 70, 70), 1500.0)
    v[:, 15:] = 4500.0
    leaky = simulate(v, backend="openfwi")[0].double()  # the OpenFWI scheme as released
    clean = simulate_openfwi(v, extra=120, periodic=False)[0].double()  # same interior, no leak
    deep = simulate(v)[0].double()

    def rel(a, b, t0, t1):
        return float((a[:, t0:t1] - b[:, t0:t1]).norm() / b[:, t0:t1].norm())

    assert rel(leaky, clean, 0, 600) < 1e-4  # identical until the leak arrives
    leak = rel(leaky, clean, 600, 1000)
    assert leak > 0.2  # then a visible share of the late record
    assert rel(deep, leaky, 600, 1000) > leak  # deepwave's PML does not reproduce it
    assert rel(deep, clean, 0, 600) < 0.005


def test_openfwi_backend_float32_matches_float64_and_batches():
    v = torch.as_tensor(generate_family("FlatFault_A", 2, 0))
    single = simulate(v, nt=300, backend="openfwi", dtype=torch.float64)
    assert single.shape == (2, 5, 300, 70) and single.dtype == torch.float64
    f32 = simulate(v, nt=300, backend="openfwi")
    assert float((f32.double() - single).norm() / single.norm()) < 1e-4
    torch.testing.assert_close(simulate(v[1:], nt=300, backend="openfwi", dtype=torch.float64)[0], single[1])
    with pytest.raises(ValueError, match="unknown backend"):
        simulate(v, backend="fdtd")


def _kagglekit_imports() -> dict[str, set[str]]:
    """module -> the kagglekit modules it imports anywhere (function-level imports included)."""
    src = Path(__file__).resolve().parents[1] / "src"
    graph = {}
    for path in (src / "kagglekit").rglob("*.py"):
        name = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kagglekit"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("kagglekit"))
        graph[name] = found
    return graph


def test_physics_has_no_import_cycle_and_the_data_layer_never_imports_augment():
    graph = _kagglekit_imports()
    physics = [m for m in graph if m.startswith("kagglekit.fwi.physics.")]
    for module in physics:  # depth-first: no physics module reaches itself through physics modules
        seen, stack = set(), [d for d in graph[module] if d in physics]
        while stack:
            dep = stack.pop()
            assert dep != module, f"import cycle through {module}"
            if dep not in seen:
                seen.add(dep)
                stack.extend(d for d in graph.get(dep, ()) if d in physics)
    data = [m for m in graph if m.startswith("kagglekit.fwi.data")] + ["kagglekit.fwi.task", "kagglekit.fwi.maps"]
    assert not [(m, d) for m in data for d in graph[m] if d.startswith("kagglekit.fwi.augment")]
