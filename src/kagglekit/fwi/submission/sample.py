"""The sample submission: its header and row order (id-major, y = 0..69), parsed once with pyarrow."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kagglekit.fwi.constants import GRID
from kagglekit.fwi.submission.format import SubmissionError, csv_header


def one_chunk(column: pa.ChunkedArray) -> pa.Array:
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
    if not path.is_file():
        raise SubmissionError(f"{path}: sample submission not found")
    columns = csv_header(path)
    if "oid_ypos" not in columns:
        raise SubmissionError(f"{path}: no oid_ypos column (header {columns[:5]})")
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                include_columns=["oid_ypos"], column_types={"oid_ypos": pa.string()}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as err:
        raise SubmissionError(f"{path}: not a readable sample submission ({err})") from None
    return SampleSubmission(path, columns, one_chunk(table.column(0)))


def as_sample(sample_submission: str | Path | SampleSubmission) -> SampleSubmission:
    if isinstance(sample_submission, SampleSubmission):
        return sample_submission
    return read_sample_submission(sample_submission)


def sample_submission_ids(path: str | Path) -> list[str]:
    """Ids in the sample submission's order; checks it is id-major with y = 0..69 per id."""
    return read_sample_submission(path).ids


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
