"""Submission CSVs in the exact Kaggle format: write fast, validate precisely, score.

Format: `oid_ypos,x_1,x_3,...,x_69`, one row per (id, depth row y), `oid_ypos = f"{id}_y_{y}"`,
value = velocity[y, x] for the 35 odd columns; metric = MAE over those values.

Precision: values are written with one decimal after clipping to [1500, 4500], so every value
is exactly 6 characters ("1500.0".."4500.0") and rounding moves any MAE by at most 0.05 m/s.
That fixed width lets the writer build the bytes with numpy instead of formatting 161M floats:
each chunk of ids is laid out in a reused byte buffer (the constant parts written once), values
go in through one table lookup each, and chunks are built on worker threads while the main
thread writes them in order. Reading (sample submission, validation) uses pyarrow's
multithreaded CSV reader; the checks are vectorised and the expensive diagnostics (missing,
unknown, duplicated ids; which cells are bad) only run when the cheap checks fail.
"""

from __future__ import annotations

import csv as _csv
import io
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kagglekit.errors import UserError
from kagglekit.fwi.constants import GRID, VMAX, VMIN
from kagglekit.io import atomic_path, read_ids

ODD_COLUMNS = np.arange(1, GRID, 2)  # x_1 .. x_69
COLUMNS = ["oid_ypos", *(f"x_{x}" for x in ODD_COLUMNS)]
HEADER = ",".join(COLUMNS)
DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
VALUE_WIDTH = 7  # ',dddd.d'
N_VALUES = len(ODD_COLUMNS)
THREADS = max(1, min(4, os.cpu_count() or 1))
READ_BLOCK = 4 << 20  # bytes per pyarrow CSV batch when validating
MIN_RANGE = 16 << 20  # smallest byte range worth its own reader thread


class SubmissionError(UserError):
    pass


def _build_value_table() -> np.ndarray:
    """uint64 indexed by tenths of a m/s (0..45000): little-endian bytes b',dddd.d,' from 1500.0 up.

    The 8th byte is the comma that starts the next value, so the overlapping 8-byte stores of a
    row's values (7 bytes apart) agree on every byte whatever order they land in.
    """
    lo, hi = int(VMIN * 10), int(VMAX * 10)
    text = "".join(f",{t / 10:.1f}," for t in range(lo, hi + 1))
    table = np.zeros(hi + 1, dtype="<u8")
    table[lo:] = np.frombuffer(text.encode("ascii"), dtype="<u8")
    return table


VALUE_TABLE = _build_value_table()


def _csv_header(path: str | Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        line = f.readline()
    return next(_csv.reader([line]), []) if line else []


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


@dataclass
class SampleSubmission:
    """The sample submission, parsed once: header, `oid_ypos` column (pyarrow, file order) and, on
    first use of `.ids`, the ids in file order (checking the file is id-major with y = 0..69)."""

    path: Path
    columns: list[str]
    oid: pa.Array
    _ids: list[str] | None = field(default=None, repr=False)

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = _id_major_ids(self.oid, self.path)
        return self._ids


def read_sample_submission(path: str | Path) -> SampleSubmission:
    path = Path(path)
    columns = _csv_header(path)
    if "oid_ypos" not in columns:
        raise SubmissionError(f"{path}: no oid_ypos column (header {columns[:5]})")
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=["oid_ypos"], column_types={"oid_ypos": pa.string()}, strings_can_be_null=False
        ),
    )
    return SampleSubmission(path, columns, _one_chunk(table.column(0)))


def _as_sample(sample_submission: str | Path | SampleSubmission) -> SampleSubmission:
    if isinstance(sample_submission, SampleSubmission):
        return sample_submission
    return read_sample_submission(sample_submission)


def _fixed_width_id_major(oid: pa.Array, ids: pa.Array) -> bool:
    """True if `oid` is exactly ids x y = 0..69 (id-major), checked on the raw Arrow buffers; only
    for ids of one byte length (the Kaggle case). False means "not shown", not "wrong"."""
    m = len(ids)
    lengths = pc.binary_length(ids).to_numpy(zero_copy_only=False)
    if m == 0 or oid.null_count or ids.null_count or not (lengths == lengths[0]).all():
        return False
    L = int(lengths[0])
    short_w, long_w = L + 4, L + 5
    width = 10 * short_w + (GRID - 10) * long_w  # bytes per id
    offsets = np.frombuffer(oid.buffers()[1], dtype=np.int32)[oid.offset : oid.offset + len(oid) + 1]
    row_starts = np.concatenate([np.arange(10) * short_w, 10 * short_w + np.arange(GRID - 10) * long_w])
    expected_offsets = (np.arange(m)[:, None] * width + row_starts).ravel()
    if not (np.array_equal(offsets[:-1] - offsets[0], expected_offsets) and offsets[-1] - offsets[0] == m * width):
        return False
    data = np.frombuffer(oid.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(m, width)
    id_bytes = np.frombuffer(ids.buffers()[2], dtype=np.uint8)
    id_offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32)[ids.offset : ids.offset + m + 1]
    id_bytes = id_bytes[id_offsets[0] : id_offsets[-1]].reshape(m, 1, L)
    head = data[:, : 10 * short_w].reshape(m, 10, short_w)
    tail = data[:, 10 * short_w :].reshape(m, GRID - 10, long_w)
    head_suffix = np.frombuffer("".join(f"_y_{y}" for y in range(10)).encode(), dtype=np.uint8).reshape(10, 4)
    tail_suffix = np.frombuffer("".join(f"_y_{y}" for y in range(10, GRID)).encode(), dtype=np.uint8).reshape(GRID - 10, 5)
    return bool(
        (head[:, :, :L] == id_bytes).all()
        and (tail[:, :, :L] == id_bytes).all()
        and (head[:, :, L:] == head_suffix).all()
        and (tail[:, :, L:] == tail_suffix).all()
    )


def _id_major_ids(oid: pa.Array, path: Path) -> list[str]:
    n = len(oid)
    if n % GRID:
        raise SubmissionError(f"{path}: {n} rows is not a multiple of {GRID}")
    heads = oid.take(pa.array(np.arange(0, n, GRID)))
    ids = pc.replace_substring_regex(heads, pattern=r"^(.*)_y_.*$", replacement=r"\1")  # s[: s.rindex("_y_")]
    if _fixed_width_id_major(oid, ids):
        return ids.to_pylist()
    ys = pa.array([str(y) for y in range(GRID)])
    expected = pc.binary_join_element_wise(
        ids.take(pa.array(np.repeat(np.arange(len(ids)), GRID))), ys.take(pa.array(np.tile(np.arange(GRID), len(ids)))), "_y_"
    )
    same = pc.equal(expected, oid)
    if not pc.all(same).as_py() and n:
        r = int(np.flatnonzero(~same.to_numpy(zero_copy_only=False))[0])
        raise SubmissionError(
            f"{path}: row {r + 2} is {oid[r].as_py()!r}, expected {expected[r].as_py()!r} (id-major, y = 0..69)"
        )
    return ids.to_pylist()


def sample_submission_ids(path: str | Path) -> list[str]:
    """Ids in the sample submission's order; checks it is id-major with y = 0..69 per id."""
    return read_sample_submission(path).ids


class _Workspace:
    """Reused buffers for up to `n` ids: the CSV bytes (constant parts written once) and temporaries."""

    def __init__(self, n: int, id_len: int):
        self.id_len = id_len
        w = N_VALUES * VALUE_WIDTH
        self.short_w, self.long_w = id_len + 4 + w + 1, id_len + 5 + w + 1  # '<id>_y_d' / '<id>_y_dd' rows
        self.id_w = 10 * self.short_w + (GRID - 10) * self.long_w
        self.buf = np.empty((n, self.id_w), dtype=np.uint8)
        self.head = self.buf[:, : 10 * self.short_w].reshape(n, 10, self.short_w)
        self.tail = self.buf[:, 10 * self.short_w :].reshape(n, GRID - 10, self.long_w)
        for rows, y in ((self.head, np.arange(10)), (self.tail, np.arange(10, GRID))):
            rows[:, :, id_len : id_len + 3] = np.frombuffer(b"_y_", dtype=np.uint8)
            if len(y) and y[0] >= 10:
                rows[:, :, id_len + 3] = DIGITS[y // 10]
                rows[:, :, id_len + 4] = DIGITS[y % 10]
            else:
                rows[:, :, id_len + 3] = DIGITS[y]
        # unaligned uint64 views: value k of a row at byte prefix + 7k (8 bytes, the last overlapping '\n')
        self.vhead = np.ndarray((n, 10, N_VALUES), "<u8", self.buf, id_len + 4, (self.id_w, self.short_w, VALUE_WIDTH))
        self.vtail = np.ndarray(
            (n, GRID - 10, N_VALUES), "<u8", self.buf, 10 * self.short_w + id_len + 5, (self.id_w, self.long_w, VALUE_WIDTH)
        )
        self.f32 = np.empty((n, GRID, N_VALUES), dtype=np.float32)
        self.idx = np.empty((n, GRID, N_VALUES), dtype=np.intp)
        self.packed = np.empty((n, GRID, N_VALUES), dtype="<u8")

    def fill(self, block: np.ndarray, ids: list[str]) -> np.ndarray:
        """block (k, 70, 70) predictions of `ids` -> (k, id_w) uint8 CSV rows (a view of the buffer)."""
        k = len(block)
        f32, idx, packed = self.f32[:k], self.idx[:k], self.packed[:k]
        np.copyto(f32, block[:, :, 1::2], casting="unsafe")
        lo, hi = f32.min(initial=np.inf), f32.max(initial=-np.inf)  # NaN propagates through both
        if not (math.isfinite(lo) and math.isfinite(hi)):
            bad = int(np.flatnonzero(~np.isfinite(f32).all(axis=(1, 2)))[0])
            raise SubmissionError(f"non-finite prediction for id {ids[bad]}")
        np.clip(f32, VMIN, VMAX, out=f32)
        np.multiply(f32, np.float32(10), out=f32)
        np.rint(f32, out=f32)
        np.copyto(idx, f32, casting="unsafe")
        np.take(VALUE_TABLE, idx, out=packed, mode="clip")
        self.vhead[:k] = packed[:, :10]
        self.vtail[:k] = packed[:, 10:]
        self.head[:k, :, -1] = ord("\n")
        self.tail[:k, :, -1] = ord("\n")
        id_bytes = np.frombuffer("".join(ids).encode("ascii"), dtype=np.uint8).reshape(k, 1, self.id_len)
        self.head[:k, :, : self.id_len] = id_bytes
        self.tail[:k, :, : self.id_len] = id_bytes
        return self.buf[:k]


def write_submission(
    predictions: np.ndarray,
    ids: list[str],
    sample_submission: str | Path | SampleSubmission,
    out: str | Path,
    chunk: int = 1024,
    threads: int | None = None,
) -> Path:
    """predictions (N, 70, 70) in the order of `ids` -> CSV in the sample submission's row order.

    `sample_submission` may be a path or an already parsed `SampleSubmission`.
    """
    if not isinstance(predictions, np.ndarray):
        predictions = np.asarray(predictions)
    if predictions.ndim != 3 or predictions.shape[1:] != (GRID, GRID):
        raise SubmissionError(f"predictions must be (N, 70, 70), found {predictions.shape}")
    if len(ids) != len(predictions):
        raise SubmissionError(f"{len(ids)} ids for {len(predictions)} predictions")
    order_ids = _as_sample(sample_submission).ids
    position = {i: k for k, i in enumerate(ids)}
    missing = [i for i in order_ids if i not in position]
    if missing or len(order_ids) != len(ids):
        extra = sorted(set(ids) - set(order_ids))
        raise SubmissionError(
            f"id sets differ: {len(missing)} missing from predictions (e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})"
        )
    id_len = len(order_ids[0]) if order_ids else 0
    if any(len(i) != id_len or not i.isascii() for i in order_ids):
        raise SubmissionError("ids must be ASCII strings of one length (the writer lays out fixed-width rows)")
    order = np.array([position[i] for i in order_ids], dtype=np.intp)
    chunk = max(1, min(chunk, len(order)))
    threads = max(1, threads or THREADS)
    free: SimpleQueue[_Workspace] = SimpleQueue()
    n_buffers = threads + 1  # one more than the builders, so writing overlaps building
    for _ in range(n_buffers):
        free.put(None)  # allocated lazily by the worker that first needs it

    def build(start: int) -> tuple[_Workspace, np.ndarray]:
        ws = free.get() or _Workspace(chunk, id_len)
        rows = order[start : start + chunk]
        if rows[-1] - rows[0] == len(rows) - 1 and (len(rows) < 2 or bool((np.diff(rows) == 1).all())):
            block = predictions[rows[0] : rows[-1] + 1]  # contiguous: a view, no copy
        else:
            block = predictions[rows]
        try:
            return ws, ws.fill(block, order_ids[start : start + len(rows)])
        except BaseException:
            free.put(ws)
            raise

    with atomic_path(out) as tmp, open(tmp, "wb") as f, ThreadPoolExecutor(threads) as pool:
        f.write((HEADER + "\n").encode())
        pending: deque = deque()
        try:
            for start in range(0, len(order), chunk):
                pending.append(pool.submit(build, start))
                if len(pending) >= n_buffers:
                    ws, data = pending.popleft().result()
                    f.write(data.data)
                    free.put(ws)
            while pending:
                ws, data = pending.popleft().result()
                f.write(data.data)
                free.put(ws)
        finally:
            for fut in pending:
                fut.cancel()
    return Path(out)


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
    oid = _one_chunk(oid)
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


VALUE_PROBLEMS = ("non-numeric, NaN or inf values", "values outside 1500-4500")


def validate_submission(
    csv: str | Path, sample_submission: str | Path | SampleSubmission, max_examples: int = 3
) -> list[Problem]:
    """Every defect found, each with its first offending rows (CSV line numbers). Empty = valid.

    `sample_submission` may be a path or an already parsed `SampleSubmission`. The file is read in
    parallel byte ranges by pyarrow (oid_ypos as strings, values as float64); if a value does not
    parse, it is read again as text to locate the non-numeric cells.
    """
    problems: list[Problem] = []
    sample = _as_sample(sample_submission)
    expected_cols = sample.columns
    try:
        cols = _csv_header(csv)
        try:
            scans = _scan_file(csv, cols, as_text=False)
        except pa.ArrowInvalid as exc:
            if "conversion error" not in str(exc):
                raise
            scans = _scan_file(csv, cols, as_text=True)
    except Exception as exc:
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


def submit(
    pred_path: str | Path, ids_path: str | Path, sample_submission: str | Path, out: str | Path, max_examples: int = 3
) -> dict:
    """The whole `fwi submit`: predictions .npy (N, 70, 70) + ids.txt -> Kaggle CSV at `out`, validated.

    The sample submission is parsed once for both steps. Raises SubmissionError (listing every
    problem) if the written file does not validate. Returns the path, row count and timings.
    """
    t0 = time.perf_counter()
    sample = read_sample_submission(sample_submission)
    predictions = np.load(pred_path, mmap_mode="r")
    ids = read_ids(ids_path)
    t1 = time.perf_counter()
    path = write_submission(predictions, ids, sample, out)
    del predictions  # unmap: its pages would otherwise count in the validation's peak memory
    t2 = time.perf_counter()
    problems = validate_submission(path, sample, max_examples=max_examples)
    t3 = time.perf_counter()
    if problems:
        raise SubmissionError(f"the written submission {path} is invalid:\n" + "\n".join(f"  {p}" for p in problems))
    return {
        "path": path,
        "rows": len(sample.oid),
        "read_s": t1 - t0,
        "write_s": t2 - t0,  # includes reading the inputs and the sample submission (read_s)
        "validate_s": t3 - t2,
        "total_s": t3 - t0,
    }


def score_submission(csv: str | Path, labels: np.ndarray, ids: list[str], families: list[str] | None = None) -> dict[str, float]:
    """MAE of a submission against known velocities (N, 70, 70), overall and per family."""
    import pandas as pd

    frame = pd.read_csv(csv, dtype={"oid_ypos": str})
    values = frame[[f"x_{x}" for x in ODD_COLUMNS]].to_numpy(np.float64)
    parts = frame["oid_ypos"].str.rsplit("_y_", n=1, expand=True)  # (rows, 2): id, y
    rows = pd.Index(ids).get_indexer(parts[0])
    if (rows < 0).any():
        raise SubmissionError(f"{csv}: id {parts[0][np.argmax(rows < 0)]!r} has no label (line {int(np.argmax(rows < 0)) + 2})")
    ys = parts[1].astype(int).to_numpy()
    truth = labels[rows, ys][:, ODD_COLUMNS]
    err = np.abs(values - truth).mean(axis=1)
    metrics = {"mae": float(err.mean())}
    if families is not None:
        fam = np.asarray(families)[rows]
        for name in sorted(set(fam)):
            metrics[f"mae/{name}"] = float(err[fam == name].mean())
    return metrics


def score_table(csv: str | Path, labels: str | Path, label_ids: str | Path) -> str:
    """`fwi score`: the Kaggle MAE of a submission against known velocities, per family when
    `label_ids` (id[,family] per row of `labels`) names them, as a Markdown table."""
    import pandas as pd

    from kagglekit.report import markdown_table

    frame = pd.read_csv(label_ids, dtype=str)
    if "id" not in frame:
        raise SubmissionError(
            f"{label_ids}: expected a CSV with an 'id' column (and optionally 'family'), found {list(frame.columns)}"
        )
    metrics = score_submission(
        csv, np.load(labels), frame["id"].tolist(), frame["family"].tolist() if "family" in frame else None
    )
    rows = [(key.split("/", 1)[1], value) for key, value in metrics.items() if key.startswith("mae/")]
    rows.append(("all", metrics["mae"]))
    return markdown_table(["family", "MAE (m/s), Kaggle metric"], rows, digits=2)
