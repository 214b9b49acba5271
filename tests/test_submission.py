"""Submission CSV writer (with its range check), validator and scorer."""

import json

import numpy as np
import pandas as pd
import pytest

from kagglekit.fwi.predictions import Predictions, PredictionsError
from kagglekit.fwi.submission import (
    SubmissionError,
    check_range,
    sample_submission_ids,
    score_submission,
    validate_submission,
    write_and_validate,
    write_csv,
)
from kagglekit.fwi.synthetic import write_sample_submission


def write_submission(values, ids, sample, out, **options):
    """The writer on an in-memory prediction; these tests check the format, so clipping is allowed
    for any share (the refusal has its own tests)."""
    return write_csv(Predictions(np.asarray(values), list(ids)), sample, out, max_clipped_share=1.0, **options)


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
    with pytest.raises(PredictionsError, match=r"\(N, 70, 70\)"):
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


# --- pyarrow validator: exact messages and CSV line numbers ------------------------------------


def _good_lines(sample, tmp_path) -> list[str]:
    path, ids = sample
    good = write_submission(np.full((4, 70, 70), 3000.0, np.float32), ids, path, tmp_path / "good.csv")
    return good.read_text().splitlines()


def _set_cell(lines: list[str], line: int, column: str, text: str) -> None:
    """Replace one cell; `line` is the 1-based CSV line number (line 1 = header)."""
    k = lines[0].split(",").index(column)
    cells = lines[line - 1].split(",")
    cells[k] = text
    lines[line - 1] = ",".join(cells)


@pytest.fixture(params=["one range", "split"])
def read_layout(request, monkeypatch):
    """Validate in one piece, or in 3 parallel byte ranges of many tiny batches (line numbers must hold)."""
    if request.param == "split":
        import kagglekit.fwi.submission.validate as sub

        monkeypatch.setattr(sub, "THREADS", 3)
        monkeypatch.setattr(sub, "MIN_RANGE", 1)
        monkeypatch.setattr(sub, "READ_BLOCK", 3000)  # about 11 rows per batch
    return request.param


def _problems(lines: list[str], sample, tmp_path) -> list[str]:
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    return [str(p) for p in validate_submission(bad, sample[0])]


def _oid(sample, line: int) -> str:
    ids = sample[1]
    return f"{ids[(line - 2) // 70]}_y_{(line - 2) % 70}"


@pytest.mark.parametrize(
    "line, column, text, expect",
    [
        (11, "x_9", "abc", "non-numeric, NaN or inf values: 1 cells in 1 rows; first at line 11 ({oid}), column x_9 = 'abc'"),
        (7, "x_3", "nan", "non-numeric, NaN or inf values: 1 cells in 1 rows; first at line 7 ({oid}), column x_3 = nan"),
        (8, "x_5", "", "non-numeric, NaN or inf values: 1 cells in 1 rows; first at line 8 ({oid}), column x_5 = ''"),
        (9, "x_69", "-inf", "non-numeric, NaN or inf values: 1 cells in 1 rows; first at line 9 ({oid}), column x_69 = -inf"),
        (10, "x_7", "1400.0", "values outside 1500-4500: 1 cells in 1 rows; first at line 10 ({oid}), column x_7 = 1400.0"),
        (250, "x_1", "4500.1", "values outside 1500-4500: 1 cells in 1 rows; first at line 250 ({oid}), column x_1 = 4500.1"),
    ],
)
def test_validator_locates_bad_cells(sample, tmp_path, read_layout, line, column, text, expect):
    lines = _good_lines(sample, tmp_path)
    _set_cell(lines, line, column, text)
    assert _problems(lines, sample, tmp_path) == [expect.format(oid=_oid(sample, line))]


def test_validator_counts_cells_and_rows_and_reports_the_first(sample, tmp_path, read_layout):
    lines = _good_lines(sample, tmp_path)
    _set_cell(lines, 200, "x_3", "zz")  # text in one column, NaN in another: both are "non-numeric, NaN or inf"
    _set_cell(lines, 30, "x_11", "nan")
    _set_cell(lines, 30, "x_5", "")
    _set_cell(lines, 40, "x_1", "1499.9")
    _set_cell(lines, 41, "x_1", "9e9")
    assert _problems(lines, sample, tmp_path) == [
        f"non-numeric, NaN or inf values: 3 cells in 2 rows; first at line 30 ({_oid(sample, 30)}), column x_5 = ''",
        f"values outside 1500-4500: 2 cells in 2 rows; first at line 40 ({_oid(sample, 40)}), column x_1 = 1499.9",
    ]


def test_validator_reports_ids_with_lines(sample, tmp_path, read_layout):
    lines = _good_lines(sample, tmp_path)
    dup = lines[8]  # line 9
    lines.append(dup)  # line 282: a repeat of line 9
    lines[4] = "ffffffffff" + lines[4][10:]  # line 5: unknown id (so its own oid goes missing)
    del lines[100:102]  # lines 101, 102 dropped
    problems = _problems(lines, sample, tmp_path)
    assert problems == [
        f"duplicates: 1 repeated oid_ypos, first at lines [280]: ['{_oid(sample, 9)}']",
        f"missing rows: 3 oid_ypos of the sample submission absent, e.g. {[_oid(sample, 5), _oid(sample, 101), _oid(sample, 102)]}",
        "unknown rows: 1 oid_ypos not in the sample submission, first at lines [5]: ['ffffffffff_y_3']",
    ]


def test_validator_column_order_and_set(sample, tmp_path, read_layout):
    lines = _good_lines(sample, tmp_path)
    swapped = [",".join([c[0], c[2], c[1], *c[3:]]) for c in (line.split(",") for line in lines)]
    assert _problems(swapped, sample, tmp_path) == ["columns: order differs: ['oid_ypos', 'x_3', 'x_1', 'x_5', 'x_7']..."]
    dropped = [line.rsplit(",", 1)[0] for line in lines]
    assert _problems(dropped, sample, tmp_path) == ["columns: missing ['x_69'], unexpected []"]


def test_validator_accepts_permuted_rows_and_flags_unreadable(sample, tmp_path, read_layout):
    lines = _good_lines(sample, tmp_path)
    assert _problems([lines[0], *lines[:0:-1]], sample, tmp_path) == []  # Kaggle matches rows by oid_ypos
    lines[3] = lines[3].rsplit(",", 2)[0]  # a short row
    problems = _problems(lines, sample, tmp_path)
    assert len(problems) == 1 and problems[0].startswith("unreadable:"), problems


def test_valid_file_takes_the_cheap_path(sample, tmp_path, monkeypatch):
    import kagglekit.fwi.submission.validate as sub

    lines = _good_lines(sample, tmp_path)
    monkeypatch.setattr(sub, "_id_problems", lambda *a: pytest.fail("id diagnostics computed for a valid file"))
    monkeypatch.setattr(sub, "_numeric", lambda *a: pytest.fail("cell diagnostics computed for a valid file"))
    assert _problems(lines, sample, tmp_path) == []


def test_sample_submission_ids_checks_id_major_layout(sample, tmp_path):
    path, ids = sample
    assert sample_submission_ids(path) == ids
    lines = path.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    bad = tmp_path / "swapped.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(SubmissionError, match=rf"row 4 is '{ids[0]}_y_3', expected '{ids[0]}_y_2'"):
        sample_submission_ids(bad)
    odd = tmp_path / "odd_ids.csv"  # ids of different lengths: the generic (non fixed-width) path
    write_sample_submission(odd, ["a", "bb_y_x", "ccc"])
    assert sample_submission_ids(odd) == ["a", "bb_y_x", "ccc"]


# --- writer bytes -------------------------------------------------------------------------------


def _reference_csv(pred: np.ndarray, ids: list[str]) -> str:
    """The format spelled out in Python: clip in float32, one decimal (round half to even on tenths)."""
    values = np.rint(np.clip(pred.astype(np.float32), 1500, 4500) * np.float32(10)).astype(int)
    lines = ["oid_ypos," + ",".join(f"x_{x}" for x in range(1, 70, 2))]
    for k, i in enumerate(ids):
        for y in range(70):
            lines.append(f"{i}_y_{y}," + ",".join(f"{t // 10}.{t % 10}" for t in values[k, y, 1::2]))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_writer_bytes_match_reference_in_any_chunking(sample, tmp_path, rng, dtype):
    path, ids = sample
    pred = rng.uniform(1400, 4600, (4, 70, 70)).astype(dtype)
    pred[0, 0, 1::2][:6] = [1500, 4500, 1499.96, 4500.04, 1e30 if dtype != np.float16 else 6e4, -1e4]
    expected = _reference_csv(pred, ids)
    shuffled = [3, 1, 0, 2]
    for chunk, threads in [(1024, None), (1, 3), (3, 2), (2, 1)]:
        out = write_submission(
            pred[shuffled], [ids[i] for i in shuffled], path, tmp_path / "sub.csv", chunk=chunk, threads=threads
        )
        assert out.read_text() == expected


# --- write_and_validate() (`fwi write-csv`) ------------------------------------------------------


def _prediction_file(tmp_path, values, ids) -> Predictions:
    np.save(tmp_path / "pred.npy", values)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    return Predictions.read(tmp_path / "pred.npy")


def test_write_and_validate_writes_a_valid_file_and_its_sources(sample, tmp_path, rng):
    path, ids = sample
    pred = rng.uniform(1500, 4500, (4, 70, 70)).astype(np.float16)
    result = write_and_validate(_prediction_file(tmp_path, pred, ids), path, tmp_path / "out" / "sub.csv")
    assert result["path"] == tmp_path / "out" / "sub.csv" and result["rows"] == 4 * 70
    assert result["write_s"] >= 0 and result["validate_s"] >= 0 and result["range"].clipped == 0
    assert result["path"].read_text() == _reference_csv(pred, ids)
    sources = json.loads((tmp_path / "out" / "sub.csv.sources.json").read_text())
    assert sources == {"csv": str(result["path"].resolve()), "predictions": str((tmp_path / "pred.npy").resolve()), "runs": []}


def test_write_and_validate_raises_on_invalid_input(sample, tmp_path):
    path, ids = sample
    with pytest.raises(SubmissionError, match="id sets differ"):
        write_and_validate(
            _prediction_file(tmp_path, np.full((4, 70, 70), 3000.0, np.float32), ids[:3] + ["0000000bad"]),
            path,
            tmp_path / "sub.csv",
        )
    assert not (tmp_path / "sub.csv").exists()
    pred = _prediction_file(tmp_path, np.full((4, 70, 70), 3000.0, np.float32), ids)
    other = tmp_path / "other_sample.csv"  # a sample whose columns the written file cannot match
    pd.read_csv(path, dtype={"oid_ypos": str}).rename(columns={"x_69": "x_70"}).to_csv(other, index=False)
    with pytest.raises(SubmissionError, match=r"is invalid:\n  columns: missing \['x_70'\], unexpected \['x_69'\]"):
        write_and_validate(pred, other, tmp_path / "sub.csv")
    assert not (tmp_path / "sub.csv").exists() and not (tmp_path / "sub.csv.sources.json").exists()


# --- the range check before clipping -----------------------------------------------------------


def test_range_check_reports_what_clipping_changes(sample, rng):
    _, ids = sample
    values = rng.uniform(1600, 4400, (4, 70, 70)).astype(np.float32)
    values[0, 3, 1] = 1490.0  # 10 below, in a scored column
    values[2, 9, 69] = 4530.0  # 30 above
    values[1, 5, 0] = 100.0  # an unscored column: never written, never counted
    check = check_range(Predictions(values, ids))
    assert (check.values, check.clipped) == (4 * 70 * 35, 2)
    assert check.mean_shift == pytest.approx(20.0) and check.max_shift == pytest.approx(30.0)
    assert (check.low, check.high) == (1490.0, 4530.0)
    assert "clipped 2 of 9,800 scored values (0.020%)" in check.summary() and "at most 30.0 m/s" in check.summary()


def _spread(ids) -> np.ndarray:
    """Maps whose scored columns run from 1600 to 4400 m/s."""
    values = np.full((len(ids), 70, 70), 3000.0, np.float32)
    values[:, :, 1::2] = np.linspace(1600, 4400, 35)
    return values


@pytest.mark.parametrize(
    "case, expect",
    [
        (
            "km/s",
            r"p\.npy: 100\.0% of the scored values lie outside 1500-4500 m/s \(found 1\.6 to 4\.4, median 3: km/s\? the CSV takes m/s\); refusing",
        ),
        ("share", r"p\.npy: 1\.1% of the scored values lie outside 1500-4500 m/s \(found 0 to 4400, median 3000\); refusing"),
    ],
)
def test_range_check_refuses_another_scale_or_a_large_share(sample, tmp_path, case, expect):
    path, ids = sample
    values = _spread(ids)
    if case == "km/s":
        values /= 1000
    else:
        values[0, :3, 1::2] = 0.0  # 3 rows x 35 values = 105 of 9800 scored values: 1.07% (> 1%)
    with pytest.raises(SubmissionError, match=expect):
        write_csv(Predictions(values, ids, tmp_path / "p.npy"), path, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    values[0, 2, 1::2] = 1600.0  # 70 of 9800 (0.71%): clipped, and reported
    if case == "share":
        assert check_range(Predictions(values, ids)).clipped == 70
        assert write_csv(Predictions(values, ids), path, tmp_path / "x.csv").is_file()
