"""Validate a submission CSV against the sample submission, precisely and fast.

The file is read by pyarrow in parallel byte ranges, batch by batch; the checks are vectorised and
the expensive diagnostics (missing, unknown, duplicated ids; which cells are bad) only run when the
cheap checks fail. Every problem names its first offending CSV line.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.submission.format import csv_header
from kagglekit.fwi.submission.sample import SampleSubmission, as_sample, one_chunk

THREADS = max(1, min(4, os.cpu_count() or 1))
READ_BLOCK = 4 << 20  # bytes per pyarrow CSV batch
MIN_RANGE = 16 << 20  # smallest byte range worth its own reader thread
VALUE_PROBLEMS = ("non-numeric, NaN or inf values", "values outside 1500-4500")


@dataclass
class Problem:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


class _ByteRange(io.RawIOBase):
    """Bytes [start, stop) of a file, as a stream for pyarrow's CSV reader."""

    def __init__(self, path: str | Path, start: int, stop: int):
        self._file = open(path, "rb")
        self._file.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:n])
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def _byte_ranges(path: str | Path, parts: int) -> list[tuple[int, int]]:
    """Split a file into up to `parts` ranges that each start at a line start (CSV rows: the reader,
    like pyarrow's own block splitting, assumes no newline inside a quoted value)."""
    size = os.path.getsize(path)
    parts = max(1, min(parts, size // MIN_RANGE))
    cuts = [0]
    with open(path, "rb") as f:
        for p in range(1, parts):
            f.seek(max(cuts[-1], size * p // parts))
            f.readline()
            cuts.append(f.tell())
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a] or [(0, size)]


@dataclass
class _Scan:
    """What one byte range of the submission holds: its rows' oid_ypos and, per kind of bad value
    (0: non-numeric/NaN/inf, 1: outside 1500-4500), cell and row counts and the first bad cell."""

    rows: int = 0
    oid: list = field(default_factory=list)
    cells: list = field(default_factory=lambda: [0, 0])
    bad_rows: list = field(default_factory=lambda: [0, 0])
    first: list = field(default_factory=lambda: [None, None])  # (row in this range, column index, shown value)


def _scan(csv: str | Path, byte_range: tuple[int, int], header: list[str], first_range: bool, as_text: bool) -> _Scan:
    """Stream one byte range batch by batch: keep oid_ypos, check the values vectorised per batch and
    column (cheap min/max test first; masks only for a column that fails it)."""
    types = {c: pa.string() if as_text or c == "oid_ypos" else pa.float64() for c in header}
    reader = pacsv.open_csv(
        _ByteRange(csv, *byte_range),
        read_options=pacsv.ReadOptions(
            column_names=header, skip_rows=1 if first_range else 0, block_size=READ_BLOCK, use_threads=False
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    oid_k = header.index("oid_ypos") if "oid_ypos" in header else None
    value_idx = [k for k, c in enumerate(header) if c != "oid_ypos"]
    scan = _Scan()
    for batch in reader:
        if oid_k is not None:
            scan.oid.append(batch.column(oid_k))
        row_masks: list[np.ndarray | None] = [None, None]
        firsts: list[tuple | None] = [None, None]
        for k in value_idx:
            column = batch.column(k)
            if not as_text and column.null_count == 0:
                values = column.to_numpy()
                if len(values) == 0 or (values.min() >= VMIN and values.max() <= VMAX):  # NaN fails both
                    continue
            values = _numeric(column) if as_text else column.to_numpy(zero_copy_only=False)  # empty cells -> NaN
            nonfinite = ~np.isfinite(values)
            with np.errstate(invalid="ignore"):
                outside = ~nonfinite & ((values < VMIN) | (values > VMAX))
            for j, mask in enumerate((nonfinite, outside)):
                count = int(mask.sum())
                if not count:
                    continue
                scan.cells[j] += count
                row_masks[j] = mask if row_masks[j] is None else row_masks[j] | mask
                r = int(mask.argmax())
                if firsts[j] is None or r < firsts[j][0]:  # columns come in file order: ties keep the first
                    firsts[j] = (r, k, _shown(column[r].as_py()))
        for j in range(2):
            if row_masks[j] is not None:
                scan.bad_rows[j] += int(row_masks[j].sum())
                if scan.first[j] is None:
                    r, k, shown = firsts[j]
                    scan.first[j] = (scan.rows + r, k, shown)
        scan.rows += batch.num_rows
    return scan


def _scan_file(csv: str | Path, header: list[str], as_text: bool) -> list[_Scan]:
    ranges = _byte_ranges(csv, THREADS)
    if len(ranges) == 1:
        return [_scan(csv, ranges[0], header, True, as_text)]
    with ThreadPoolExecutor(len(ranges)) as pool:  # one streaming reader per range, in parallel
        futures = [pool.submit(_scan, csv, r, header, i == 0, as_text) for i, r in enumerate(ranges)]
        return [f.result() for f in futures]


def _id_problems(oid: pa.ChunkedArray, expected: pa.Array, max_examples: int) -> list[Problem]:
    """Duplicated, missing and unknown `oid_ypos` (only computed when the file is not exactly `expected`)."""
    problems = []
    oid = one_chunk(oid)
    codes = oid.dictionary_encode().indices.to_numpy()
    dup = np.ones(len(codes), dtype=bool)
    dup[np.unique(codes, return_index=True)[1]] = False
    if dup.any():
        rows = np.flatnonzero(dup)[:max_examples]
        problems.append(
            Problem(
                "duplicates",
                f"{int(dup.sum())} repeated oid_ypos, first at lines {[int(r) + 2 for r in rows]}: {oid.take(rows).to_pylist()}",
            )
        )
    absent = expected.filter(pc.invert(pc.is_in(expected, value_set=oid)))
    if len(absent):
        problems.append(
            Problem(
                "missing rows",
                f"{len(pc.unique(absent))} oid_ypos of the sample submission absent, e.g. {absent[:max_examples].to_pylist()}",
            )
        )
    unknown = ~pc.is_in(oid, value_set=expected).to_numpy(zero_copy_only=False)
    if unknown.any():
        rows = np.flatnonzero(unknown)[:max_examples]
        problems.append(
            Problem(
                "unknown rows",
                f"{int(unknown.sum())} oid_ypos not in the sample submission, first at lines {[int(r) + 2 for r in rows]}: {oid.take(rows).to_pylist()}",
            )
        )
    return problems


def _numeric(text: pa.Array) -> np.ndarray:
    """Strings -> float64, non-numeric cells as NaN."""
    try:
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import pandas as pd

        return pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False), dtype=object), errors="coerce").to_numpy(np.float64)


def _shown(cell: float | str | None) -> str:
    """A cell as the problem message shows it: numbers as floats, anything else as its text."""
    if cell is None or cell == "":
        return "''"
    if isinstance(cell, str):
        try:
            return repr(float(cell))
        except ValueError:
            return repr(cell)
    return repr(cell)


def validate_submission(
    csv: str | Path, sample_submission: str | Path | SampleSubmission, max_examples: int = 3
) -> list[Problem]:
    """Every defect found, each with its first offending rows (CSV line numbers). Empty = valid.

    `sample_submission` may be a path or an already parsed `SampleSubmission`. The file is read in
    parallel byte ranges by pyarrow (oid_ypos as strings, values as float64); if a value does not
    parse, it is read again as text to locate the non-numeric cells.
    """
    problems: list[Problem] = []
    sample = as_sample(sample_submission)
    expected_cols = sample.columns
    try:
        cols = csv_header(csv)
        try:
            scans = _scan_file(csv, cols, as_text=False)
        except pa.ArrowInvalid as exc:
            if "conversion error" not in str(exc):
                raise
            scans = _scan_file(csv, cols, as_text=True)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return [Problem("unreadable", f"{csv}: {type(exc).__name__}: {exc}")]
    if cols != expected_cols:
        missing = [c for c in expected_cols if c not in cols]
        extra = [c for c in cols if c not in expected_cols]
        detail = f"missing {missing}, unexpected {extra}" if missing or extra else f"order differs: {cols[:5]}..."
        problems.append(Problem("columns", detail))
    if "oid_ypos" not in cols:
        return problems
    oid = pa.chunked_array([chunk for scan in scans for chunk in scan.oid], type=pa.string())
    if not (len(oid) == len(sample.oid) and pc.all(pc.equal(oid, sample.oid)).as_py()):
        problems.extend(_id_problems(oid, sample.oid, max_examples))
    for j, kind in enumerate(VALUE_PROBLEMS):
        cells = sum(scan.cells[j] for scan in scans)
        if not cells:
            continue
        offsets = np.cumsum([0] + [scan.rows for scan in scans])
        start, (r, k, shown) = next((offsets[i], scan.first[j]) for i, scan in enumerate(scans) if scan.first[j])
        r = int(start + r)
        rows = sum(scan.bad_rows[j] for scan in scans)
        problems.append(
            Problem(kind, f"{cells} cells in {rows} rows; first at line {r + 2} ({oid[r].as_py()}), column {cols[k]} = {shown}")
        )
    return problems
