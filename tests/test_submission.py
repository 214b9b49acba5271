"""Submission CSV writer, validator and scorer."""

import numpy as np
import pandas as pd
import pytest

from kagglekit.fwi.submission import SubmissionError, score_submission, validate_submission, write_submission
from kagglekit.fwi.synthetic import write_sample_submission


@pytest.fixture
def sample(tmp_path):
    ids = [f"{k:010x}" for k in (0xABC, 0x123, 0xFFF0, 0x42)]  # not sorted: the sample's order rules
    path = tmp_path / "sample_submission.csv"
    write_sample_submission(path, ids)
    return path, ids


def test_round_trip_equals_odd_columns_at_one_decimal(sample, tmp_path, rng):
    path, ids = sample
    pred = rng.uniform(1400, 4600, (4, 70, 70)).astype(np.float32)
    shuffled = [2, 0, 3, 1]
    out = write_submission(pred[shuffled], [ids[i] for i in shuffled], path, tmp_path / "sub.csv")
    frame = pd.read_csv(out, dtype={"oid_ypos": str})
    assert frame.columns.tolist() == pd.read_csv(path, nrows=0).columns.tolist()
    assert frame["oid_ypos"].tolist() == pd.read_csv(path, dtype=str)["oid_ypos"].tolist()
    back = frame.iloc[:, 1:].to_numpy().reshape(4, 70, 35)
    expected = np.clip(pred, 1500, 4500)[:, :, 1::2]
    assert np.abs(back - expected).max() <= 0.05 + 1e-3
    assert abs(np.abs(back - expected).mean()) < 0.05  # the stated bound on any MAE change
    assert validate_submission(out, path) == []


def test_writer_refuses_bad_input(sample, tmp_path):
    path, ids = sample
    good = np.full((4, 70, 70), 3000.0, np.float32)
    with pytest.raises(SubmissionError, match="id sets differ"):
        write_submission(good, ids[:3] + ["0000000bad"], path, tmp_path / "x.csv")
    with pytest.raises(SubmissionError, match=r"\(N, 70, 70\)"):
        write_submission(good[:, :69], ids, path, tmp_path / "x.csv")
    nan = good.copy()
    nan[1, 5, 5] = np.nan
    with pytest.raises(SubmissionError, match="non-finite"):
        write_submission(nan, ids, path, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()  # nothing half-written


def _corrupt(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    f = frame.copy()
    if kind == "columns":
        cols = f.columns.tolist()
        f = f[[cols[0], cols[2], cols[1], *cols[3:]]]
    elif kind == "missing column":
        f = f.drop(columns=["x_69"])
    elif kind == "duplicates":
        f = pd.concat([f, f.iloc[[7]]], ignore_index=True)
    elif kind == "missing rows":
        f = f.drop(index=[10, 11])
    elif kind == "unknown rows":
        f.loc[3, "oid_ypos"] = "ffffffffff_y_3"
    elif kind == "nan":
        f.loc[5, "x_3"] = np.nan
    elif kind == "inf":
        f.loc[6, "x_5"] = np.inf
    elif kind == "range":
        f.loc[8, "x_7"] = 1400.0
    elif kind == "text":
        f["x_9"] = f["x_9"].astype(object)
        f.loc[9, "x_9"] = "abc"
    return f


@pytest.mark.parametrize(
    "kind, expect",
    [
        ("columns", "columns: order differs"),
        ("missing column", "missing ['x_69']"),
        ("duplicates", "duplicates: 1 repeated oid_ypos, first at lines [282]"),
        ("missing rows", "missing rows: 2 oid_ypos"),
        ("unknown rows", "unknown rows: 1 oid_ypos not in the sample submission, first at lines [5]"),
        ("nan", "non-numeric, NaN or inf values: 1 cells in 1 rows; first at line 7"),
        ("inf", "first at line 8"),
        ("range", "values outside 1500-4500: 1 cells in 1 rows; first at line 10"),
        ("text", "column x_9 = 'abc'"),
    ],
)
def test_validator_names_each_defect(sample, tmp_path, kind, expect):
    path, ids = sample
    good = write_submission(np.full((4, 70, 70), 3000.0, np.float32), ids, path, tmp_path / "good.csv")
    bad = tmp_path / "bad.csv"
    _corrupt(pd.read_csv(good, dtype={"oid_ypos": str}), kind).to_csv(bad, index=False)
    problems = [str(p) for p in validate_submission(bad, path)]
    assert any(expect in p for p in problems), problems


def test_score_against_labels(sample, tmp_path, rng):
    path, ids = sample
    labels = rng.uniform(1500, 4500, (4, 70, 70)).astype(np.float32)
    out = write_submission(labels + 100, ids, path, tmp_path / "s.csv")
    metrics = score_submission(out, labels, ids, ["A", "A", "B", "B"])
    clipped = np.clip(labels + 100, 1500, 4500)
    expected = np.abs(clipped - labels)[:, :, 1::2].mean()
    assert metrics["mae"] == pytest.approx(expected, abs=0.05)
    assert set(metrics) == {"mae", "mae/A", "mae/B"}
