"""Staged refinement (physics/stages.py) on data made with the exact OpenFWI scheme: defect
correction reaches the exact operator's fit, and rounding recovers integer layer velocities."""

import numpy as np
import pytest
import torch

from kagglekit.fwi.physics.exact import simulate_exact
from kagglekit.fwi.physics.families import generate_family
from kagglekit.fwi.physics.simulate import simulate
from kagglekit.fwi.physics.stages import FLAT, TWO_D, StageSettings, mirror_rms, refine_staged

FAST = dict(row_iters=20, layer_iters=30, refresh_every=10, tol_change=1e-12)


@pytest.fixture(scope="module")
def flat_case():
    """A FlatVel map of whole m/s, its exact-scheme record, and a start 1-6 m/s off per layer."""
    truth = torch.as_tensor(np.round(generate_family("FlatVel_A", 1, 2))).double()  # (1, 70, 70)
    with torch.no_grad():
        observed = simulate_exact(truth, dtype=torch.float64).float()  # (1, 5, 1000, 70)
    offsets = torch.tensor([3.0, -4.0, 6.0, -1.0, 2.0, -5.0], dtype=torch.float64)
    rows = truth[0, :, 0]
    layer = torch.cat([torch.zeros(1, dtype=torch.long), (rows.diff() != 0).long()]).cumsum(0)
    start = truth + offsets[layer % len(offsets)][None, :, None]
    return truth, observed, start


def test_mirror_symmetry_separates_flat_maps():
    maps = np.round(np.concatenate([generate_family("FlatVel_B", 2, 0), generate_family("CurveVel_A", 2, 0)]))
    with torch.no_grad():
        rms = mirror_rms(simulate(torch.as_tensor(maps)))
    assert bool((rms[:2] < 1e-5).all()) and bool((rms[2:] > 1e-4).all())


def test_defect_correction_reaches_the_exact_operators_fit_and_rounding_the_integers(flat_case):
    truth, observed, start = flat_case
    corrected = refine_staged(start, observed, StageSettings(operator="corrected", **FAST))
    assert corrected.kinds == [FLAT] and not bool(corrected.failed.any())
    # rounding recovers the whole-m/s layers exactly, and their exact-scheme misfit is the float floor
    assert torch.equal(corrected.velocity.double(), truth)
    assert float(corrected.misfit_after[0]) < 1e-9 < float(corrected.misfit_before[0])


def test_deepwave_alone_stops_at_its_floor(flat_case):
    """The same fit under deepwave alone: the operator's ~1e-3 error against the scheme leaves the
    layers off by some m/s and the exact misfit far above what defect correction reaches (measured
    5e-9 against ~7e-16), so the test above measures the correction, not an easy start."""
    truth, observed, start = flat_case
    plain = refine_staged(start, observed, StageSettings(operator="deepwave", **FAST))
    exact_fit = plain.velocity.double()
    with torch.no_grad():
        residual = simulate_exact(exact_fit, dtype=torch.float64).float()[:, :, :999] - observed[:, :, :999]
    relative = float(residual.square().mean() / observed[:, :, :999].square().mean())
    assert relative > 1e-9  # defect correction reaches < 1e-9 (measured ~7e-16; the test above)
    assert not torch.equal(exact_fit, truth)


def test_never_worse_than_the_start_and_two_d_maps_take_the_pixel_path():
    truth = torch.as_tensor(np.round(generate_family("CurveFault_A", 1, 3))).double()
    with torch.no_grad():
        observed = simulate(truth.float())
    start = truth + 20.0
    settings = StageSettings(operator="deepwave", dct_iters=3, pixel_iters=4, merge_iters=2)
    result = refine_staged(start, observed, settings)
    assert result.kinds == [TWO_D] and result.stages[0].startswith("dct:")
    assert float(result.misfit_after[0]) <= float(result.misfit_before[0])
    assert (result.velocity.double() - truth).abs().mean() < 20.0


def test_refine_command_options_reach_the_settings():
    from kagglekit.cli import build_parser
    from kagglekit.errors import UserError
    from kagglekit.fwi.commands import _refine_settings

    parser = build_parser()
    base = ["fwi", "refine", "p.npy", "--test-dir", "t", "--out", "o"]
    settings = _refine_settings(parser.parse_args(base))
    assert (settings.method, settings.operator, settings.n_time) == ("basis", "corrected", 999)
    args = parser.parse_args(
        [*base, "--operator", "openfwi", "--stage-iters", "row=7,merge=3", "--time-window", "800", "--late-weight", "2"]
    )
    stages = _refine_settings(args).stages()
    assert (stages.operator, stages.row_iters, stages.merge_iters, stages.n_time, stages.late_weight) == (
        "openfwi",
        7,
        3,
        800,
        2.0,
    )
    for bad in (["--stage-iters", "rows=7"], ["--stage-iters", "row=x"], ["--time-window", "1001"]):
        with pytest.raises(UserError):
            _refine_settings(parser.parse_args([*base, *bad]))
