"""Predict (TTA), local CV, ensembling and the CLI chain on the tiny synthetic competition."""

import json
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
from tests.conftest import FWI_CONFIGS


@pytest.fixture(scope="module")
def trained(converted, tmp_path_factory):
    """tiny_inversionnet trained 1 epoch on folds 0 and 1."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = load_config(
        FWI_CONFIGS / "tiny_inversionnet.yaml", [f"data.root={converted}", f"out_dir={tmp / 'runs'}", "train.epochs=1"]
    )
    runs = [fit(cfg, fold=k, progress=False) for k in (0, 1)]
    return converted, runs


def test_tta_is_the_mean_of_the_two_passes():
    torch.manual_seed(0)
    task = FWITask(load_config(FWI_CONFIGS / "tiny_inversionnet.yaml"))
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
    save_config(load_config(FWI_CONFIGS / "tiny_inversionnet.yaml", [f"data.root={conv}"]), run / "config.yaml")
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


def test_cli_chain_predict_ensemble_write_csv_score(trained, synthetic_competition, tmp_path, capsys):
    _, runs = trained
    comp = synthetic_competition
    pred = tmp_path / "pred"
    sample = ["--sample-submission", str(comp / "sample_submission.csv")]
    assert main(["fwi", "predict", *map(str, runs), "--test-dir", str(comp / "test"), "--out", str(pred), "--workers", "0"]) == 0
    recorded = json.loads((pred / "runs.json").read_text())  # which run folders each file came from
    assert recorded == {
        "tiny_inversionnet__fold0": [str(runs[0].resolve())],
        "tiny_inversionnet__fold1": [str(runs[1].resolve())],
        "tiny_inversionnet": sorted(str(r.resolve()) for r in runs),
    }
    assert main(["fwi", "ensemble", str(runs[0]), str(runs[1]), "--method", "mean", "--out", str(tmp_path / "ens")]) == 2
    assert "OOF id sets differ" in capsys.readouterr().err  # different folds cover different samples
    assert not (tmp_path / "ens").exists()
    assert main(["fwi", "write-csv", str(pred / "tiny_inversionnet.npy"), *sample, "--out", str(tmp_path / "subs")]) == 0
    csv = tmp_path / "subs" / "tiny_inversionnet.csv"
    assert (
        json.loads((tmp_path / "subs" / "tiny_inversionnet.csv.sources.json").read_text())["runs"]
        == recorded["tiny_inversionnet"]
    )
    assert main(["fwi", "validate", str(csv), *sample]) == 0
    capsys.readouterr()
    assert (
        main(["fwi", "score", str(csv), "--labels", str(comp / "test_labels.npy"), "--label-ids", str(comp / "test_ids.csv")])
        == 0
    )
    assert "| all |" in capsys.readouterr().out
    # `fwi ensemble` of the config folder carries its runs forward to the CSV's sources
    ens = tmp_path / "ens"
    assert (
        main(
            [
                "fwi",
                "ensemble",
                str(runs[0].parent),
                "--preds",
                str(pred / "tiny_inversionnet.npy"),
                "--method",
                "mean",
                "--out",
                str(ens),
            ]
        )
        == 0
    )
    assert read_ids(ens / "ids.txt") == sorted(read_ids(pred / "ids.txt"))
    assert main(["fwi", "write-csv", str(ens / "ensemble.npy"), *sample, "--out", str(tmp_path / "subs"), "--name", "blend"]) == 0
    assert json.loads((tmp_path / "subs" / "blend.csv.sources.json").read_text())["runs"] == recorded["tiny_inversionnet"]
    assert (tmp_path / "subs" / "blend.csv").read_text() == csv.read_text()  # a mean of one member is that member
    # a member in km/s is refused by the blend itself (blended with m/s members it would look
    # plausible: the mean of 3000 and 3 is in range), and write-csv refuses the file on its own
    km = tmp_path / "km"
    km.mkdir()
    np.save(km / "tiny_inversionnet.npy", np.load(pred / "tiny_inversionnet.npy").astype(np.float32) / 1000)
    (km / "ids.txt").write_text((pred / "ids.txt").read_text())
    args = [str(runs[0].parent), "--preds", str(km / "tiny_inversionnet.npy"), "--method", "mean", "--out", str(km / "ens")]
    capsys.readouterr()
    assert main(["fwi", "ensemble", *args]) == 2
    assert "expected velocities in m/s (1500-4500), found a median of" in capsys.readouterr().err
    assert not (km / "ens").exists()
    assert main(["fwi", "write-csv", str(km / "tiny_inversionnet.npy"), *sample, "--out", str(km / "subs")]) == 2
    assert "100.0% of the scored values lie outside 1500-4500 m/s" in capsys.readouterr().err
    # the kernel's blend is `fwi ensemble`'s code: equal weights without an ensemble.json
    from kagglekit.fwi.ensemble import blend_config_predictions

    blended = blend_config_predictions(pred, ["tiny_inversionnet"])
    np.testing.assert_array_equal(blended.values, np.load(pred / "tiny_inversionnet.npy").astype(np.float32))  # unclipped
    assert blended.ids == sorted(read_ids(pred / "ids.txt")) and blended.runs == recorded["tiny_inversionnet"]
    # the hidden labels themselves score ~0
    labels = tmp_path / "labels"
    labels.mkdir()
    np.save(labels / "labels.npy", np.load(comp / "test_labels.npy"))
    (labels / "ids.txt").write_text("\n".join(pd.read_csv(comp / "test_ids.csv", dtype=str)["id"]) + "\n")
    assert main(["fwi", "write-csv", str(labels / "labels.npy"), *sample, "--out", str(tmp_path / "subs")]) == 0
    capsys.readouterr()
    main(
        [
            "fwi",
            "score",
            str(tmp_path / "subs" / "labels.csv"),
            "--labels",
            str(comp / "test_labels.npy"),
            "--label-ids",
            str(comp / "test_ids.csv"),
        ]
    )
    first = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| all |")][0]
    assert float(first.split("|")[2]) <= 0.05
