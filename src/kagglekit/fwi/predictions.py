"""`Predictions`: the one prediction-file type of waveform inversion.

On disk a prediction is `<name>.npy` of shape (N, 70, 70) (m/s, float16 or float32) with `ids.txt`
beside it: one test id per line, in the array's row order. Every command that reads or writes
predictions (predict, ensemble, refine, submit, pseudo-label, the Kaggle kernel) goes through this
type; in memory it is the array and its ids, so refinement and the CSV writer never need a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kagglekit.errors import UserError
from kagglekit.io import atomic_save_npy, read_ids, write_ids

IDS_FILE = "ids.txt"
MAP_SHAPE = (70, 70)
_CHUNK = 4096  # rows per finiteness check (bounded memory on memmaps)


class PredictionsError(UserError):
    """A prediction file or its ids are missing, unreadable, or not (N, 70, 70) finite maps."""


@dataclass
class Predictions:
    """`values` (N, 70, 70) m/s, row i is the map of `ids[i]`; `path` is where it was read from."""

    values: np.ndarray
    ids: list[str]
    path: Path | None = None

    def __post_init__(self) -> None:
        where = self.path or "predictions"
        if self.values.ndim != 3 or self.values.shape[1:] != MAP_SHAPE:
            raise PredictionsError(f"{where}: expected (N, 70, 70) velocity maps, found shape {self.values.shape}")
        if len(self.values) != len(self.ids):
            raise PredictionsError(f"{where}: {len(self.values)} maps but {len(self.ids)} ids")

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def ids_path(path: str | Path) -> Path:
        """The ids sidecar of a prediction file: `ids.txt` in the same folder."""
        return Path(path).parent / IDS_FILE

    @classmethod
    def read(cls, path: str | Path, *, check_finite: bool = True) -> Predictions:
        """Memory-map `path` and read the ids beside it; a missing, truncated or non-numeric file,
        a shape that is not (N, 70, 70), a row count that differs from the ids, or a non-finite
        value is one PredictionsError naming the file."""
        path = Path(path)
        if not path.is_file():
            raise PredictionsError(f"{path}: prediction file not found")
        try:
            values = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise PredictionsError(f"{path}: not a readable .npy array ({type(err).__name__}: {err})") from None
        if not np.issubdtype(values.dtype, np.floating) and not np.issubdtype(values.dtype, np.integer):
            raise PredictionsError(f"{path}: expected numeric velocity maps, found dtype {values.dtype}")
        ids = read_ids(cls.ids_path(path))
        pred = cls(values, ids, path)
        if check_finite:
            pred.check_finite()
        return pred

    def check_finite(self) -> None:
        where = self.path or "predictions"
        bad = [
            self.ids[start + i]
            for start in range(0, len(self.values), _CHUNK)
            for i in np.flatnonzero(~np.isfinite(np.asarray(self.values[start : start + _CHUNK])).all(axis=(1, 2)))
        ]
        if bad:
            raise PredictionsError(f"{where}: {len(bad)} maps have non-finite values (first: {bad[:3]})")

    def write(self, path: str | Path, dtype=np.float16) -> Path:
        """`path` (.npy, atomically) and `ids.txt` beside it; an ids.txt already there must hold
        the same ids (several prediction files share one folder and one ids file)."""
        path = Path(path)
        ids_file = self.ids_path(path)
        if ids_file.is_file() and read_ids(ids_file) != self.ids:
            raise PredictionsError(f"{ids_file}: holds other ids than {path}; write these predictions to another folder")
        atomic_save_npy(path, np.asarray(self.values, dtype=dtype))
        if not ids_file.is_file():
            write_ids(ids_file, self.ids)
        self.path = path
        return path

    def float32(self) -> np.ndarray:
        """The maps in memory as float32 (N, 70, 70)."""
        return np.asarray(self.values, dtype=np.float32)

    def sorted_by_id(self) -> Predictions:
        order = np.argsort(self.ids)
        return Predictions(np.asarray(self.values)[order], [self.ids[i] for i in order], None)

    def reordered(self, ids: list[str]) -> Predictions:
        """The rows of `ids`, in that order (every id must be here)."""
        position = {k: i for i, k in enumerate(self.ids)}
        missing = [k for k in ids if k not in position]
        if missing:
            raise PredictionsError(f"{self.path or 'predictions'}: no map for {len(missing)} ids (first: {missing[:3]})")
        return Predictions(np.asarray(self.values)[[position[k] for k in ids]], list(ids), None)
