"""Physics in the loop: the data misfit, test-time refinement and the `fwi refine` job."""

import csv

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter

from kagglekit.cli import main
from kagglekit.errors import UserError
from kagglekit.fwi.physics import generate_family, misfit, simulate
from kagglekit.fwi.physics.refine import RefineSettings, choose_plans, mirror_symmetric, refine_batch
from kagglekit.fwi.refine import refine_file
from kagglekit.io import read_ids, write_ids


def three_layers() -> torch.Tensor:
    v = torch.full((1, 70, 70), 2000.0)
    v[:, 25:] = 3000.0
    v[:, 50:] = 4000.0
    return v


@pytest.fixture(scope="module")
def layered():
    """A flat 3-layer map, its seismic, and a smooth start (the truth blurred over 4 rows)."""
    true = three_layers()
    observed = simulate(true)
    start = torch.from_numpy(gaussian_filter(true.numpy(), sigma=(0, 4, 0), mode="nearest"))
    return true, observed, start


def test_misfit_is_zero_at_the_true_map_and_its_gradient_points_downhill(layered):
    true, observed, start = layered
    assert float(misfit(true, observed)[0]) == pytest.approx(0.0, abs=1e-10)
    v = start.clone().requires_grad_(True)
    value = misfit(v, observed)
    value.sum().backward()
    step = v.grad / v.grad.abs().max() * 20.0  # at most 20 m/s anywhere
    with torch.no_grad():
        after = misfit(start - step, observed)
    assert float(value[0].detach()) > 0 and float(after[0]) < float(value[0].detach())


def test_misfit_options_and_errors(layered):
    true, observed, start = layered
    both = torch.cat([true, start])
    obs2 = observed.expand(2, -1, -1, -1)
    l2, l1 = misfit(both, obs2), misfit(both, obs2, norm="l1")
    assert l2.shape == (2,) and l2[0] < l2[1] and l1[0] < l1[1]
    late = torch.zeros(999)
    late[600:] = 1.0
    assert misfit(start, observed, time_weight=late) < misfit(start, observed)
    assert float(misfit(start, observed * 3.0, normalise_traces=True)[0]) == pytest.approx(
        float(misfit(start, observed, normalise_traces=True)[0]), rel=1e-3
    )
    with pytest.raises(ValueError, match=r"observed must be \(B, 5, T, 70\)"):
        misfit(start, observed[:, :4])
    with pytest.raises(ValueError, match="999 samples"):
        misfit(start, observed[:, :, :500])
    with pytest.raises(ValueError, match="time_weight"):
        misfit(start, observed, time_weight=torch.ones(10))


def test_flat_layered_maps_are_detected_from_their_shots(layered):
    true, observed, _ = layered
    curved = torch.as_tensor(generate_family("CurveVel_A", 1, 3))
    both = torch.cat([observed, simulate(curved)])
    assert mirror_symmetric(both).tolist() == [True, False]
    assert choose_plans(torch.cat([true, curved]), both, RefineSettings()) == ["rows", "smooth+pixels"]


@pytest.mark.slow
def test_row_basis_recovers_a_flat_three_layer_map(layered):
    true, observed, start = layered
    result = refine_batch(start, observed, RefineSettings(iters=40))
    row_error = (result.velocity - true).abs()[0, :, 0]  # (70,) m/s
    assert result.plans == ["rows"] and bool(result.accepted[0])
    start_error = float((start - true).abs().mean())
    assert start_error > 60  # the start is far off near the interfaces
    # the half-space under the last interface is only seen through one reflection's amplitude,
    # so the tight bounds hold for the median row and the rows above it
    assert float(row_error.median()) < 10.0, row_error.round()
    assert float(row_error[:48].mean()) < 12.0, row_error.round()
    assert float(row_error.mean()) < 0.35 * start_error, row_error.round()


def test_refine_lowers_the_misfit_and_never_accepts_a_worse_map():
    true = torch.as_tensor(generate_family("Style_A", 2, 1))
    observed = simulate(true)
    start = true + 150.0 * torch.sin(torch.arange(70.0) / 9.0)[None, :, None]  # a smooth depth error
    good = refine_batch(start, observed, RefineSettings(iters=4))
    assert bool(good.accepted.all()) and bool((good.misfit_after < 0.8 * good.misfit_before).all())
    # a reckless optimiser (Adam with a huge step) only makes things worse: the start must stand
    bad = refine_batch(start, observed, RefineSettings(iters=2, optimizer="adam", adam_lr=50.0))
    assert not bool(bad.accepted.any())
    torch.testing.assert_close(bad.velocity, start.clamp(1500, 4500))
    assert bool((bad.misfit_after == bad.misfit_before).all())


@pytest.fixture
def three_map_test(tmp_path):
    """A test folder of 3 ids, their true maps, and perturbed predictions with ids.txt."""
    true = np.concatenate([three_layers().numpy(), generate_family("CurveFault_A", 2, 4)])
    ids = ["aaaaaaaaa0", "aaaaaaaaa1", "aaaaaaaaa2"]
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    for sample_id, record in zip(ids, simulate(torch.from_numpy(true)).numpy()):
        np.save(test_dir / f"{sample_id}.npy", record)
    offsets = np.array([40.0, 250.0, 120.0], np.float32)[:, None, None]
    pred = np.clip(true + offsets, 1500, 4500).astype(np.float16)
    np.save(tmp_path / "pred.npy", pred)
    write_ids(tmp_path / "ids.txt", ids)
    return tmp_path, test_dir, ids, pred


def test_refine_file_worst_first_resumes_and_skips_done_samples(three_map_test, capsys):
    root, test_dir, ids, pred = three_map_test
    out = root / "refined"
    refine_file(root / "pred.npy", root / "ids.txt", test_dir, out, samples=1, iters=2, progress=False)
    first = pd.read_csv(out / "residuals.csv", dtype={"sample_id": str})
    assert list(first.columns) == ["sample_id", "residual_before", "residual_after", "accepted", "iterations", "seconds", "basis"]
    ranking = pd.read_csv(out / "start_misfit.csv", dtype={"sample_id": str}).set_index("sample_id")["misfit"]
    assert first["sample_id"].tolist() == [ranking.idxmax()]  # the worst-fitting map went first
    refined = np.load(out / "refined.npy")
    assert refined.dtype == np.float16 and refined.shape == pred.shape and read_ids(out / "ids.txt") == ids
    untouched = [i for i, s in enumerate(ids) if s != ranking.idxmax()]
    np.testing.assert_array_equal(refined[untouched], pred[untouched])
    # an interrupted write leaves a cut line: it is dropped, and only the missing samples run
    with open(out / "residuals.csv", "a") as f:
        f.write("aaaaaaaaa9,0.1")
    refine_file(root / "pred.npy", root / "ids.txt", test_dir, out, iters=2, progress=False)
    second = pd.read_csv(out / "residuals.csv", dtype={"sample_id": str})
    assert sorted(second["sample_id"]) == sorted(ids) and len(second) == 3
    assert second.iloc[0].to_dict() == first.iloc[0].to_dict()  # the finished sample was not redone
    assert (second["residual_after"] <= second["residual_before"]).all()
    refine_file(root / "pred.npy", root / "ids.txt", test_dir, out, iters=2, progress=False)
    assert "nothing to do" in capsys.readouterr().out
    with open(out / "residuals.csv", newline="") as f:
        assert len(list(csv.reader(f))) == 4


def test_refine_refuses_mismatched_inputs(three_map_test):
    root, test_dir, ids, pred = three_map_test
    np.save(root / "short.npy", pred[:2])
    with pytest.raises(UserError, match=r"expected \(3, 70, 70\)"):
        refine_file(root / "short.npy", root / "ids.txt", test_dir, root / "o1", progress=False)
    write_ids(root / "other_ids.txt", ["bbbbbbbbb0", *ids[1:]])
    with pytest.raises(UserError, match="no seismic for 1 prediction ids"):
        refine_file(root / "pred.npy", root / "other_ids.txt", test_dir, root / "o2", progress=False)
    bad = pred.astype(np.float32)
    bad[1, 3, 3] = np.nan
    np.save(root / "nan.npy", bad)
    with pytest.raises(UserError, match="non-finite"):
        refine_file(root / "nan.npy", root / "ids.txt", test_dir, root / "o3", progress=False)


def test_refine_cli_output_feeds_submit(three_map_test, tmp_path, capsys):
    root, test_dir, ids, pred = three_map_test
    out = root / "cli_out"
    args = ["fwi", "refine", str(root / "pred.npy"), "--ids", str(root / "ids.txt"), "--test", str(test_dir)]
    assert main([*args, "--out", str(out), "--samples", "1", "--iters", "1"]) == 0
    from kagglekit.fwi.synthetic import write_sample_submission

    write_sample_submission(tmp_path / "sample.csv", ids)
    csv_path = tmp_path / "sub.csv"
    assert (
        main(
            [
                "fwi",
                "submit",
                str(out / "refined.npy"),
                "--ids",
                str(out / "ids.txt"),
                "--sample-submission",
                str(tmp_path / "sample.csv"),
                "--out",
                str(csv_path),
            ]
        )
        == 0
    )
    assert csv_path.is_file()
    np.save(root / "pred.npy", pred.astype(np.float32))  # another file now: the folder refuses to continue
    assert main([*args, "--out", str(out), "--samples", "1"]) == 2
    assert "continues the refinement of" in capsys.readouterr().err


def test_lowpass_misfit_ignores_high_frequencies_and_the_stage_plan():
    from kagglekit.fwi.physics.misfit import lowpass
    from kagglekit.fwi.physics.refine import _stages

    t = torch.arange(999.0) * 1e-3
    low, high = torch.sin(2 * torch.pi * 3 * t), torch.sin(2 * torch.pi * 30 * t)  # 3 Hz and 30 Hz
    traces = (low + high).view(1, 1, -1, 1).expand(1, 5, 999, 70)
    filtered = lowpass(traces, 8.0)[0, 0, 100:-100, 0]
    assert float((filtered - low[100:-100]).abs().max()) < 0.05  # the 30 Hz part is gone
    s = RefineSettings(iters=40, lowpass_share=0.25)
    assert _stages("smooth+pixels", s) == [("smooth", 10, 8.0), ("smooth", 12, None), ("pixels", 18, None)]
    assert _stages("rows", RefineSettings(iters=40)) == [("rows", 40, None)]
