"""Predict (TTA), local CV, ensembling and the CLI chain on the tiny synthetic competition."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kagglekit.cli import main
from kagglekit.config import load_config, save_config
from kagglekit.engine.fit import fit
from kagglekit.engine.runs import load_run
from kagglekit.engine.tta import predict_batch
from kagglekit.fwi.cv import cv_report
from kagglekit.fwi.data.convert import convert
from kagglekit.fwi.data.flip import flip_seismic, flip_velocity
from kagglekit.fwi.ensemble import EnsembleError, blend_oof
from kagglekit.fwi.models import MODELS
from kagglekit.fwi.predict import predict_runs
from kagglekit.fwi.task import FWITask
from kagglekit.io import read_ids

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fwi"


@pytest.fixture(scope="module")
def trained(synthetic_competition, tmp_path_factory):
    """tiny_inversionnet trained 1 epoch on folds 0 and 1."""
    tmp = tmp_path_factory.mktemp("trained")
    conv = convert(synthetic_competition / "train_samples", tmp / "conv", progress=False)
    cfg = load_config(CONFIGS / "tiny_inversionnet.yaml", [f"data.root={conv}", f"out_dir={tmp / 'runs'}", "train.epochs=1"])
    runs = [fit(cfg, fold=k, progress=False) for k in (0, 1)]
    return conv, runs


def test_tta_is_the_mean_of_the_two_passes():
    torch.manual_seed(0)
    task = FWITask(load_config(CONFIGS / "tiny_inversionnet.yaml"))
    model = MODELS.build("inversionnet", width=8).eval()
    x = torch.randn(2, 5, 1000, 70)
    with torch.no_grad():
        plain = model(x)
        flipped = flip_velocity(model(flip_seismic(x)))
    torch.testing.assert_close(predict_batch(task, model, {"seismic": x}, tta=True), 0.5 * (plain + flipped))
    torch.testing.assert_close(predict_batch(task, model, {"seismic": x}, tta=False), plain)


def test_predict_runs_writes_fold_files_and_their_mean(trained, synthetic_competition, tmp_path):
    _, runs = trained
    written = predict_runs(runs, synthetic_competition / "test", tmp_path / "pred", num_workers=0, progress=False)
    ids = read_ids(tmp_path / "pred" / "ids.txt")
    assert ids == sorted(p.stem for p in (synthetic_competition / "test").glob("*.npy"))
    a, b = np.load(written["tiny_inversionnet__fold0"]), np.load(written["tiny_inversionnet__fold1"])
    mean = np.load(written["tiny_inversionnet"])
    assert a.shape == (4, 70, 70) and a.dtype == np.float16
    np.testing.assert_allclose(mean.astype(np.float32), (a.astype(np.float32) + b.astype(np.float32)) / 2, atol=2.0)
    run = load_run(runs[0])
    x = torch.from_numpy(np.load(synthetic_competition / "test" / f"{ids[2]}.npy"))[None]
    expected = predict_batch(run.task, run.model, {"seismic": x}, tta=True)[0].numpy()
    np.testing.assert_allclose(a[2].astype(np.float32), expected, atol=2.0)  # float16 storage


def test_cv_report_table_csv_and_pictures(trained, tmp_path):
    _, runs = trained
    table, files = cv_report([runs[0], runs[0].parent], tmp_path / "cv", worst=2)
    frame = pd.read_csv(files["csv"])
    assert frame["run"].tolist() == ["tiny_inversionnet/fold0", "tiny_inversionnet"]
    assert frame.loc[1, "n"] == frame.loc[0, "n"] * 2  # merged folds
    assert {"FlatVel_A", "mae", "mae_all_columns"} <= set(frame.columns) and "| tiny_inversionnet |" in table
    for key in ("bars", "worst_tiny_inversionnet"):
        assert files[key].read_bytes()[:4] == b"\x89PNG"


def _fake_run(root: Path, name: str, conv: Path, ids: np.ndarray, predictions: np.ndarray) -> Path:
    """A run folder as fit() leaves it, with chosen OOF predictions."""
    run = root / name / "fold0"
    run.mkdir(parents=True)
    save_config(load_config(CONFIGS / "tiny_inversionnet.yaml", [f"data.root={conv}"]), run / "config.yaml")
    np.save(run / "oof.npy", predictions.astype(np.float16))
    index = pd.read_csv(conv / "index.csv").set_index("sample_id")
    pd.DataFrame({"sample_id": ids, "family": index.loc[ids, "family"].to_numpy()}).to_csv(run / "oof_ids.csv", index=False)
    return run


def test_weights_beat_best_member_and_holdout_scored_apart(synthetic_competition, tmp_path):
    conv = convert(synthetic_competition / "train_samples", tmp_path / "conv", holdout=0.25, progress=False)
    ids = np.arange(80)
    truth = np.load(conv / "velocity.npy")[ids]
    high = _fake_run(tmp_path / "runs", "high", conv, ids, np.clip(truth + 200, 0, None))
    low = _fake_run(tmp_path / "runs", "low", conv, ids, truth - 100)
    blend, _ = blend_oof([high, low], "weights")
    assert blend.weights == pytest.approx([1 / 3, 2 / 3], abs=0.05)
    best_single = min(blend.table["high/fold0"]["mae"], blend.table["low/fold0"]["mae"])
    assert blend.table["blend"]["mae"] < 0.5 * best_single
    assert set(blend.holdout_table) == {"high/fold0", "low/fold0", "blend"}
    mean, _ = blend_oof([high, low], "mean")
    assert blend.table["blend"]["mae"] < mean.table["blend"]["mae"]
    other = _fake_run(tmp_path / "runs", "partial", conv, ids[:60], truth[:60])
    with pytest.raises(EnsembleError, match="id sets differ"):
        blend_oof([high, other], "mean")


def test_cli_chain_predict_ensemble_submit_score(trained, synthetic_competition, tmp_path, capsys):
    _, runs = trained
    comp = synthetic_competition
    pred = tmp_path / "pred"
    assert main(["fwi", "predict", *map(str, runs), "--test-dir", str(comp / "test"), "--out", str(pred), "--workers", "0"]) == 0
    assert main(["fwi", "ensemble", "--oof", str(runs[0]), str(runs[1]), "--method", "mean", "--out", str(tmp_path / "ens")]) == 2
    assert "OOF id sets differ" in capsys.readouterr().err  # different folds cover different samples
    csv = tmp_path / "sub.csv"
    assert (
        main(
            [
                "fwi",
                "submit",
                str(pred / "tiny_inversionnet.npy"),
                "--ids",
                str(pred / "ids.txt"),
                "--sample-submission",
                str(comp / "sample_submission.csv"),
                "--out",
                str(csv),
            ]
        )
        == 0
    )
    assert main(["fwi", "validate", str(csv), "--sample-submission", str(comp / "sample_submission.csv")]) == 0
    capsys.readouterr()
    assert (
        main(["fwi", "score", str(csv), "--labels", str(comp / "test_labels.npy"), "--label-ids", str(comp / "test_ids.csv")])
        == 0
    )
    assert "| all |" in capsys.readouterr().out
    # the kernel's blend is `fwi ensemble`'s code: equal weights without an ensemble.json
    from kagglekit.fwi.ensemble import blend_config_predictions

    blended, blend_ids = blend_config_predictions(pred, ["tiny_inversionnet"])
    np.testing.assert_allclose(blended, np.clip(np.load(pred / "tiny_inversionnet.npy").astype(np.float32), 1500, 4500))
    assert blend_ids == sorted(read_ids(pred / "ids.txt"))
    # the hidden labels themselves score ~0
    labels_csv = tmp_path / "labels.csv"
    np.save(tmp_path / "labels.npy", np.load(comp / "test_labels.npy"))
    (tmp_path / "ids.txt").write_text("\n".join(pd.read_csv(comp / "test_ids.csv", dtype=str)["id"]) + "\n")
    assert (
        main(
            [
                "fwi",
                "submit",
                str(tmp_path / "labels.npy"),
                "--ids",
                str(tmp_path / "ids.txt"),
                "--sample-submission",
                str(comp / "sample_submission.csv"),
                "--out",
                str(labels_csv),
            ]
        )
        == 0
    )
    capsys.readouterr()
    main(["fwi", "score", str(labels_csv), "--labels", str(comp / "test_labels.npy"), "--label-ids", str(comp / "test_ids.csv")])
    first = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| all |")][0]
    assert float(first.split("|")[2]) <= 0.05
