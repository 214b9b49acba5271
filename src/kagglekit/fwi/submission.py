"""Submission CSVs in the exact Kaggle format: write fast, validate precisely, score.

Format: `oid_ypos,x_1,x_3,...,x_69`, one row per (id, depth row y), `oid_ypos = f"{id}_y_{y}"`,
value = velocity[y, x] for the 35 odd columns; metric = MAE over those values.

Precision: values are written with one decimal after clipping to [1500, 4500], so every value
is exactly 6 characters ("1500.0".."4500.0") and rounding moves any MAE by at most 0.05 m/s.
That fixed width lets the writer build the bytes with numpy instead of formatting 161M floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.fwi.constants import GRID, VMAX, VMIN
from kagglekit.io import atomic_path

ODD_COLUMNS = np.arange(1, GRID, 2)  # x_1 .. x_69
HEADER = "oid_ypos," + ",".join(f"x_{x}" for x in ODD_COLUMNS)
DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


class SubmissionError(ValueError):
    pass


def _build_value_table() -> np.ndarray:
    """uint64 per tenth of a m/s in 1500.0..4500.0 whose little-endian bytes are b',dddd.d\\0'."""
    text = "".join(f",{t / 10:.1f}\0" for t in range(int(VMIN * 10), int(VMAX * 10) + 1))
    return np.frombuffer(text.encode("ascii"), dtype="<u8").copy()


VALUE_TABLE = _build_value_table()


def _value_bytes(values: np.ndarray) -> np.ndarray:
    """(R, 35) float -> (R, 35 * 7) uint8 of ',dddd.d' (values already clipped to 1500..4500)."""
    tenths = np.rint(values * 10).astype(np.int32) - int(VMIN * 10)  # 0..30000
    packed = np.ascontiguousarray(VALUE_TABLE[tenths])  # (R, 35) uint64, one table lookup per value
    return packed.view(np.uint8).reshape(len(tenths), -1, 8)[:, :, :7].reshape(len(tenths), -1)


def _id_block(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Prefix bytes for rows y < 10 ('<id>_y_d', 14 bytes) and y >= 10 ('<id>_y_dd', 15 bytes)."""
    id_bytes = np.frombuffer("".join(ids).encode("ascii"), dtype=np.uint8).reshape(len(ids), 10)
    n = len(ids)
    short = np.empty((n, 10, 14), dtype=np.uint8)
    short[:, :, :10] = id_bytes[:, None, :]
    short[:, :, 10:13] = np.frombuffer(b"_y_", dtype=np.uint8)
    short[:, :, 13] = DIGITS[np.arange(10)]
    long = np.empty((n, 60, 15), dtype=np.uint8)
    long[:, :, :10] = id_bytes[:, None, :]
    long[:, :, 10:13] = np.frombuffer(b"_y_", dtype=np.uint8)
    y = np.arange(10, 70)
    long[:, :, 13] = DIGITS[y // 10]
    long[:, :, 14] = DIGITS[y % 10]
    return short, long


def sample_submission_ids(path: str | Path) -> list[str]:
    """Ids in the sample submission's order; checks it is id-major with y = 0..69 per id."""
    oid = pd.read_csv(path, usecols=["oid_ypos"], dtype=str, engine="c", na_filter=False)["oid_ypos"].to_numpy()
    if len(oid) % GRID:
        raise SubmissionError(f"{path}: {len(oid)} rows is not a multiple of {GRID}")
    ids = [s[: s.rindex("_y_")] for s in oid[::GRID]]
    expected = np.array([f"{i}_y_{y}" for i in ids for y in range(GRID)], dtype=object)
    bad = np.flatnonzero(expected != oid)
    if len(bad):
        raise SubmissionError(f"{path}: row {bad[0] + 2} is {oid[bad[0]]!r}, expected {expected[bad[0]]!r} (id-major, y = 0..69)")
    return ids


def write_submission(predictions: np.ndarray, ids: list[str], sample_submission: str | Path, out: str | Path, chunk: int = 2048) -> Path:
    """predictions (N, 70, 70) in the order of `ids` -> CSV in the sample submission's row order."""
    predictions = np.asarray(predictions)
    if predictions.ndim != 3 or predictions.shape[1:] != (GRID, GRID):
        raise SubmissionError(f"predictions must be (N, 70, 70), found {predictions.shape}")
    if len(ids) != len(predictions):
        raise SubmissionError(f"{len(ids)} ids for {len(predictions)} predictions")
    order_ids = sample_submission_ids(sample_submission)
    position = {i: k for k, i in enumerate(ids)}
    missing = [i for i in order_ids if i not in position]
    if missing or len(order_ids) != len(ids):
        extra = sorted(set(ids) - set(order_ids))
        raise SubmissionError(f"id sets differ: {len(missing)} missing from predictions (e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})")
    order = np.array([position[i] for i in order_ids])
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        f.write((HEADER + "\n").encode())
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            block = np.asarray(predictions[rows], dtype=np.float32)[:, :, ODD_COLUMNS]  # (n, 70, 35)
            if not np.isfinite(block).all():
                raise SubmissionError(f"non-finite prediction for id {order_ids[start + int(np.argwhere(~np.isfinite(block))[0][0])]}")
            values = _value_bytes(np.clip(block, VMIN, VMAX).reshape(-1, len(ODD_COLUMNS))).reshape(len(rows), GRID, -1)
            short, long = _id_block(order_ids[start : start + len(rows)])
            width = values.shape[2]
            buf = np.empty((len(rows), 10 * (14 + width + 1) + 60 * (15 + width + 1)), dtype=np.uint8)
            head = buf[:, : 10 * (15 + width)].reshape(len(rows), 10, 15 + width)
            tail = buf[:, 10 * (15 + width) :].reshape(len(rows), 60, 16 + width)
            head[:, :, :14], head[:, :, 14:-1], head[:, :, -1] = short, values[:, :10], ord("\n")
            tail[:, :, :15], tail[:, :, 15:-1], tail[:, :, -1] = long, values[:, 10:], ord("\n")
            f.write(buf.tobytes())
    return Path(out)


@dataclass
class Problem:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def validate_submission(csv: str | Path, sample_submission: str | Path, max_examples: int = 3) -> list[Problem]:
    """Every defect found, each with its first offending rows (CSV line numbers). Empty = valid."""
    problems: list[Problem] = []
    expected_cols = pd.read_csv(sample_submission, nrows=0).columns.tolist()
    try:
        frame = pd.read_csv(csv, dtype={"oid_ypos": str}, engine="c")
    except Exception as exc:
        return [Problem("unreadable", f"{csv}: {type(exc).__name__}: {exc}")]
    cols = frame.columns.tolist()
    if cols != expected_cols:
        missing = [c for c in expected_cols if c not in cols]
        extra = [c for c in cols if c not in expected_cols]
        detail = f"missing {missing}, unexpected {extra}" if missing or extra else f"order differs: {cols[:5]}..."
        problems.append(Problem("columns", detail))
    if "oid_ypos" not in cols:
        return problems
    oid = frame["oid_ypos"]
    dup = oid.duplicated(keep="first").to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)[:max_examples]
        problems.append(Problem("duplicates", f"{int(dup.sum())} repeated oid_ypos, first at lines {[int(r) + 2 for r in rows]}: {oid.iloc[rows].tolist()}"))
    expected = pd.read_csv(sample_submission, usecols=["oid_ypos"], dtype=str)["oid_ypos"]
    exp_set, got_set = set(expected), set(oid)
    missing = [o for o in expected if o not in got_set][:max_examples]
    unknown_mask = ~oid.isin(exp_set).to_numpy()
    if missing:
        problems.append(Problem("missing rows", f"{len(exp_set - got_set)} oid_ypos of the sample submission absent, e.g. {missing}"))
    if unknown_mask.any():
        rows = np.flatnonzero(unknown_mask)[:max_examples]
        problems.append(Problem("unknown rows", f"{int(unknown_mask.sum())} oid_ypos not in the sample submission, first at lines {[int(r) + 2 for r in rows]}: {oid.iloc[rows].tolist()}"))
    value_cols = [c for c in cols if c != "oid_ypos"]
    values = frame[value_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    for kind, mask in (("non-numeric, NaN or inf values", ~np.isfinite(values)), ("values outside 1500-4500", np.isfinite(values) & ((values < VMIN) | (values > VMAX)))):
        bad_rows = np.flatnonzero(mask.any(axis=1))
        if len(bad_rows):
            r = bad_rows[0]
            c = int(np.flatnonzero(mask[r])[0])
            problems.append(Problem(kind, f"{int(mask.sum())} cells in {len(bad_rows)} rows; first at line {r + 2} ({oid.iloc[r]}), column {value_cols[c]} = {frame[value_cols[c]].iloc[r]!r}"))
    return problems


def score_submission(csv: str | Path, labels: np.ndarray, ids: list[str], families: list[str] | None = None) -> dict[str, float]:
    """MAE of a submission against known velocities (N, 70, 70), overall and per family."""
    frame = pd.read_csv(csv, dtype={"oid_ypos": str})
    values = frame[[f"x_{x}" for x in ODD_COLUMNS]].to_numpy(np.float64)
    sample_id = frame["oid_ypos"].str.rsplit("_y_", n=1)
    pos = {i: k for k, i in enumerate(ids)}
    rows = np.array([pos[s[0]] for s in sample_id])
    ys = np.array([int(s[1]) for s in sample_id])
    truth = labels[rows, ys][:, ODD_COLUMNS]
    err = np.abs(values - truth).mean(axis=1)
    metrics = {"mae": float(err.mean())}
    if families is not None:
        fam = np.asarray(families)[rows]
        for name in sorted(set(fam)):
            metrics[f"mae/{name}"] = float(err[fam == name].mean())
    return metrics
