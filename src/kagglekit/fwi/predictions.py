"""`Predictions`: the one prediction-file type of waveform inversion.

On disk a prediction is `<name>.npy` of shape (N, 70, 70) (m/s, float16 or float32) with `ids.txt`
beside it: one test id per line, in the array's row order. `runs.json` beside it (optional) maps each
file's stem to the absolute run folders it came from, so a CSV made from it can say which runs it
scores (`<csv>.sources.json`). Every command that reads or writes predictions (predict, ensemble,
refine, write-csv, pseudo-label, the Kaggle kernel) goes through this type; in memory it is the
array, its ids and its runs, so refinement and the CSV writer never need a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kagglekit.errors import UserError
from kagglekit.fwi.constants import VELOCITY_SHAPE
from kagglekit.io import atomic_save_npy, atomic_write_text, not_npy, read_ids, write_ids

IDS_FILE = "ids.txt"
RUNS_FILE = "runs.json"
MAP_SHAPE = VELOCITY_SHAPE  # (70, 70)
_CHUNK = 4096  # rows per finiteness check (bounded memory on memmaps)


class PredictionsError(UserError):
    """A prediction file or its ids are missing, unreadable, or not (N, 70, 70) finite maps."""


@dataclass
class Predictions:
    """`values` (N, 70, 70) m/s, row i is the map of `ids[i]`; `path` is where it was read from;
    `runs` the absolute run folders the maps came from (empty when unknown)."""

    values: np.ndarray
    ids: list[str]
    path: Path | None = None
    runs: list[str] = field(default_factory=list)

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

    @staticmethod
    def runs_path(path: str | Path) -> Path:
        """The runs sidecar of a prediction file: `runs.json` in the same folder ({stem: [run dirs]})."""
        return Path(path).parent / RUNS_FILE

    @classmethod
    def read_runs(cls, path: str | Path) -> list[str]:
        """The run folders recorded for prediction file `path` ([] without a runs.json)."""
        return _read_runs_file(cls.runs_path(path)).get(Path(path).stem, [])

    @classmethod
    def read(cls, path: str | Path, *, check_finite: bool = True) -> Predictions:
        """Memory-map `path` and read the ids beside it; a missing, truncated or non-numeric file,
        a shape that is not (N, 70, 70), a row count that differs from the ids, or a non-finite
        value is one PredictionsError naming the file."""
        path = Path(path)
        values = read_maps(path, "prediction file")
        ids = read_ids(cls.ids_path(path))
        pred = cls(values, ids, path, cls.read_runs(path))
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
        the same ids (several prediction files share one folder and one ids file). The runs, when
        known, are recorded under the file's stem in `runs.json` beside it."""
        path = Path(path)
        self.check_folder_ids(path.parent, self.ids)
        atomic_save_npy(path, np.asarray(self.values, dtype=dtype))
        self.write_sidecars(path)
        return path

    @staticmethod
    def check_folder_ids(folder: str | Path, ids: list[str]) -> None:
        """Refuse to put predictions of `ids` in `folder` when the ids.txt already there holds others
        (every prediction file of a folder shares its ids.txt)."""
        ids_file = Path(folder) / IDS_FILE
        if ids_file.is_file() and read_ids(ids_file) != ids:
            raise PredictionsError(
                f"{ids_file}: holds other ids (another test set or row order); write these predictions to another folder"
            )

    def write_sidecars(self, path: str | Path) -> None:
        """`ids.txt` (unless the same ids are there) and this file's runs in `runs.json`, beside `path`
        (for an array already written there, e.g. streamed into a memmap)."""
        path = Path(path)
        self.check_folder_ids(path.parent, self.ids)
        ids_file = self.ids_path(path)
        if not ids_file.is_file():
            write_ids(ids_file, self.ids)
        if self.runs:
            runs_file = self.runs_path(path)
            recorded = _read_runs_file(runs_file)
            recorded[path.stem] = sorted(set(self.runs))
            atomic_write_text(runs_file, json.dumps(recorded, indent=1) + "\n")
        self.path = path

    def median_velocity(self, maps: int = 64) -> float:
        """The median value of up to `maps` evenly spaced maps: a cheap test of the unit (m/s vs km/s)."""
        rows = np.unique(np.linspace(0, len(self) - 1, min(len(self), maps)).astype(int))
        return float(np.median(np.asarray(self.values[rows], dtype=np.float32)))  # (k, 70, 70) -> scalar

    def float32(self) -> np.ndarray:
        """The maps in memory as float32 (N, 70, 70)."""
        return np.asarray(self.values, dtype=np.float32)

    def sorted_by_id(self) -> Predictions:
        order = np.argsort(self.ids)
        return Predictions(np.asarray(self.values)[order], [self.ids[i] for i in order], None, list(self.runs))

    def reordered(self, ids: list[str]) -> Predictions:
        """The rows of `ids`, in that order (every id must be here)."""
        position = {k: i for i, k in enumerate(self.ids)}
        missing = [k for k in ids if k not in position]
        if missing:
            raise PredictionsError(f"{self.path or 'predictions'}: no map for {len(missing)} ids (first: {missing[:3]})")
        return Predictions(np.asarray(self.values)[[position[k] for k in ids]], list(ids), None, list(self.runs))


def read_maps(path: Path, what: str) -> np.ndarray:
    """Memory-map a .npy of velocity maps; missing, unreadable, truncated, pickled (object) or
    non-numeric is one PredictionsError naming the file (the shape is the caller's check)."""
    if not path.is_file():
        raise PredictionsError(f"{path}: {what} not found")
    found = not_npy(path)
    if found:  # numpy's own error would suggest loading a pickle unsafely
        raise PredictionsError(f"{path}: expected a .npy array, found {found} (never unpickled)")
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        if "object" in str(err).lower():
            raise PredictionsError(
                f"{path}: expected numeric velocity maps, found an array of Python objects (never unpickled)"
            ) from None
        if "mmap length" in str(err):
            raise PredictionsError(f"{path}: not a readable .npy array: truncated (shorter than its header declares)") from None
        raise PredictionsError(f"{path}: not a readable .npy array ({type(err).__name__}: {err})") from None
    if not np.issubdtype(values.dtype, np.floating) and not np.issubdtype(values.dtype, np.integer):
        raise PredictionsError(f"{path}: expected numeric velocity maps, found dtype {values.dtype}")
    return values


def _read_runs_file(path: Path) -> dict[str, list[str]]:
    """{prediction stem: [absolute run dirs]} from a runs.json ({} when there is none)."""
    if not path.is_file():
        return {}
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PredictionsError(f"{path}: not a runs.json ({type(err).__name__}: {err})") from None
    if not isinstance(recorded, dict) or not all(
        isinstance(v, list) and all(isinstance(r, str) for r in v) for v in recorded.values()
    ):
        raise PredictionsError(f"{path}: expected {{prediction name: [run folders]}}, found {str(recorded)[:80]}")
    return recorded
