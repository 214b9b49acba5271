"""The embedded synthetic competition: exact Kaggle layout, reproducible, readable by our readers."""

import json

import numpy as np
import pandas as pd

from kagglekit.cli import main
from kagglekit.fwi.constants import FAMILIES
from kagglekit.fwi.data import KaggleTrainSamples, TestFolder
from kagglekit.fwi.synthetic import KAGGLE_TRAIN_FILES, make_competition


def test_layout_and_file_names(synthetic_competition):
    root = synthetic_competition
    for family in FAMILIES:
        for seis, vel in KAGGLE_TRAIN_FILES[family]:
            assert (root / "train_samples" / family / seis).is_file()
            assert (root / "train_samples" / family / vel).is_file()
    assert sorted(p.name for p in (root / "train_samples" / "FlatFault_B").iterdir()) == [
        "seis6_1_0.npy",
        "seis8_1_0.npy",
        "vel6_1_0.npy",
        "vel8_1_0.npy",
    ]
    assert sorted(p.name for p in (root / "train_samples" / "FlatVel_A" / "data").iterdir()) == ["data1.npy", "data2.npy"]
    seis = np.load(root / "train_samples" / "Style_A" / "data" / "data1.npy")
    vel = np.load(root / "train_samples" / "Style_A" / "model" / "model1.npy")
    assert seis.shape == (4, 5, 1000, 70) and seis.dtype == np.float32
    assert vel.shape == (4, 1, 70, 70) and vel.dtype == np.float32
    assert len(KaggleTrainSamples(root / "train_samples")) == 80


def test_test_set_labels_and_sample_submission(synthetic_competition):
    root = synthetic_competition
    test = TestFolder(root / "test")
    ids = pd.read_csv(root / "test_ids.csv", dtype=str)
    assert test.ids == ids["id"].tolist() and len(test) == 4
    assert all(len(i) == 10 and int(i, 16) >= 0 for i in test.ids)
    labels = np.load(root / "test_labels.npy")
    assert labels.shape == (4, 70, 70) and labels.min() >= 1500 and labels.max() <= 4500
    sub = pd.read_csv(root / "sample_submission.csv")
    assert list(sub.columns) == ["oid_ypos"] + [f"x_{x}" for x in range(1, 70, 2)]
    assert len(sub.columns) == 36 and len(sub) == 4 * 70
    assert sub["oid_ypos"].iloc[0] == f"{test.ids[0]}_y_0" and sub["oid_ypos"].iloc[69] == f"{test.ids[0]}_y_69"


def test_reproducible_by_seed_and_rerun_is_noop(tmp_path, synthetic_competition):
    again = make_competition(tmp_path / "again", per_file=4, n_test=4, seed=0, progress=False)
    for rel in ("train_samples/CurveVel_B/data/data2.npy", "test_labels.npy"):
        np.testing.assert_array_equal(np.load(again / rel), np.load(synthetic_competition / rel))
    stamp = (again / "test_labels.npy").stat().st_mtime_ns
    make_competition(again, per_file=4, n_test=4, seed=0, progress=False)
    assert (again / "test_labels.npy").stat().st_mtime_ns == stamp
    assert json.loads((again / "synthetic.json").read_text())["seed"] == 0


def test_cli_simulate_convert_and_clear_errors(tmp_path, capsys):
    assert main(["fwi", "simulate", str(tmp_path / "comp"), "--per-file", "1", "--n-test", "2", "--seed", "3"]) == 0
    assert main(["fwi", "convert", str(tmp_path / "comp" / "train_samples"), str(tmp_path / "conv"), "--holdout", "0.5"]) == 0
    index = pd.read_csv(tmp_path / "conv" / "index.csv")
    assert len(index) == 20 and (index["fold"] == -1).sum() == 10
    assert main(["fwi", "convert", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
    assert "training folder not found" in capsys.readouterr().err
