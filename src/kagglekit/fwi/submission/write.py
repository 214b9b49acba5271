"""Write a submission CSV fast: predictions (in memory or memory-mapped) -> Kaggle's exact format.

Values are written with one decimal after clipping to [1500, 4500] (after `scale.check_range` has
refused files that are not m/s), so every value is exactly 6 characters ("1500.0".."4500.0") and
rounding moves any MAE by at most 0.05 m/s. That fixed width lets the writer build the bytes with
numpy instead of formatting 161M floats: each chunk of ids is laid out in a reused byte buffer (the
constant parts written once), values go in through one table lookup each, and chunks are built on
worker threads while the main thread writes them in order, to a temporary name renamed at the end.
"""

from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import SimpleQueue

import numpy as np

from kagglekit.fwi.constants import GRID, SCORED_COLUMNS, VMAX, VMIN
from kagglekit.fwi.predictions import Predictions
from kagglekit.fwi.submission.format import HEADER, SubmissionError
from kagglekit.fwi.submission.sample import SampleSubmission, as_sample
from kagglekit.fwi.submission.scale import MAX_CLIPPED_SHARE, RangeCheck, check_range
from kagglekit.io import atomic_path

DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
VALUE_WIDTH = 7  # ',dddd.d'
N_VALUES = len(SCORED_COLUMNS)
SCORED = slice(int(SCORED_COLUMNS[0]), GRID, int(SCORED_COLUMNS[1] - SCORED_COLUMNS[0]))  # the same columns, as a view
assert np.array_equal(np.arange(GRID)[SCORED], SCORED_COLUMNS)
THREADS = max(1, min(4, os.cpu_count() or 1))


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
        np.copyto(f32, block[:, :, SCORED], casting="unsafe")  # (k, 70, 70) -> (k, 70, 35) scored columns
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


def write_csv(
    pred: Predictions,
    sample: str | Path | SampleSubmission,
    out_path: str | Path,
    *,
    checked: RangeCheck | None = None,
    max_clipped_share: float = MAX_CLIPPED_SHARE,
    chunk: int = 1024,
    threads: int | None = None,
) -> Path:
    """Predictions (any row order) -> the CSV at `out_path`, in the sample submission's row order.

    `sample` may be a path or an already parsed `SampleSubmission`. The values are checked against
    1500-4500 m/s before clipping (`scale.check_range`; pass `checked` when it was already run).
    Nothing is left at `out_path` when anything fails."""
    if checked is None:
        check_range(pred, max_clipped_share)
    values = pred.values
    order_ids = as_sample(sample).ids
    position = {i: k for k, i in enumerate(pred.ids)}
    missing = [i for i in order_ids if i not in position]
    if missing or len(order_ids) != len(pred.ids):
        extra = sorted(set(pred.ids) - set(order_ids))
        raise SubmissionError(
            f"{pred.path or 'predictions'}: id sets differ from the sample submission: {len(missing)} missing from predictions "
            f"(e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})"
        )
    id_len = len(order_ids[0]) if order_ids else 0
    if any(len(i) != id_len or not i.isascii() for i in order_ids):
        raise SubmissionError("ids must be ASCII strings of one length (the writer lays out fixed-width rows)")
    order = np.array([position[i] for i in order_ids], dtype=np.intp)
    chunk = max(1, min(chunk, len(order)))
    threads = max(1, threads or THREADS)
    free: SimpleQueue[_Workspace | None] = SimpleQueue()
    n_buffers = threads + 1  # one more than the builders, so writing overlaps building
    for _ in range(n_buffers):
        free.put(None)  # allocated lazily by the worker that first needs it

    def build(start: int) -> tuple[_Workspace, np.ndarray]:
        ws = free.get() or _Workspace(chunk, id_len)
        rows = order[start : start + chunk]
        if rows[-1] - rows[0] == len(rows) - 1 and (len(rows) < 2 or bool((np.diff(rows) == 1).all())):
            block = values[rows[0] : rows[-1] + 1]  # contiguous: a view, no copy
        else:
            block = values[rows]
        try:
            return ws, ws.fill(block, order_ids[start : start + len(rows)])
        except BaseException:
            free.put(ws)
            raise

    with atomic_path(out_path) as tmp, open(tmp, "wb") as f, ThreadPoolExecutor(threads) as pool:
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
    return Path(out_path)
