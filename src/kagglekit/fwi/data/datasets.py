"""Torch datasets over a converted folder (training) and over the test folder."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from kagglekit.fwi.constants import SEISMIC_SHAPE
from kagglekit.fwi.data.convert import shard_name
from kagglekit.fwi.data.flip import flip_seismic, flip_velocity
from kagglekit.fwi.data.readers import DataError, TestFolder, open_array
from kagglekit.fwi.data.timescale import scale_range, time_scale


class FamilyColumn:
    """Family names and per-row codes of a table whose `index` has a `family` column (the one
    owner of the family coding: a ConvertedFolder's rows and a TrainingData's rows use it)."""

    index: pd.DataFrame

    @functools.cached_property
    def families(self) -> list[str]:
        """Family names, sorted; a row's family code is its position here."""
        return sorted(self.index["family"].astype(str).unique().tolist())

    def family_codes(self) -> np.ndarray:
        """(N,) int64 family code per row."""
        return self.index["family"].astype(str).map({f: k for k, f in enumerate(self.families)}).to_numpy(np.int64)


INDEX_COLUMNS = ("sample_id", "family", "shard", "row", "fold")  # what every converted or generated index.csv holds


def _read_index(path: Path) -> pd.DataFrame:
    """index.csv of a converted folder, its columns checked (one DataError naming the file)."""
    if not path.is_file():
        raise DataError(f"{path}: not found; not a converted folder (run `kagglekit fwi convert`)")
    try:
        index = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as err:  # pandas' parser errors are ValueErrors
        raise DataError(f"{path}: not a readable CSV ({type(err).__name__}: {err})") from None
    missing = [c for c in INDEX_COLUMNS if c not in index]
    if missing:
        raise DataError(f"{path}: expected the columns {list(INDEX_COLUMNS)}, found {list(index.columns)} (missing {missing})")
    return index


class ConvertedFolder(FamilyColumn):
    """Read-only view of a `kagglekit fwi convert` output; files open lazily (worker-safe)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest_path = self.root / "manifest.json"
        if not manifest_path.is_file():
            raise DataError(f"{self.root}: no manifest.json; not a converted folder (run `kagglekit fwi convert`)")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{manifest_path}: not valid JSON ({err}); convert the folder again") from None
        self.index = _read_index(self.root / "index.csv")
        self._sharded = self.manifest.get("shard_size") is not None
        self._shard_of = self.index["shard"].to_numpy()  # per sample_id, for the hot path
        self._row_of = self.index["row"].to_numpy()
        self._shards: dict[int, np.ndarray] = {}
        self._velocity: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)

    def seismic(self, sample_id: int) -> torch.Tensor:
        """(5, 1000, 70) float16 tensor (a fresh copy of one memmap row; cast to float32 on the device).

        A plain np.memmap slice: `benchmarks/memmap_read.py` compares it with a hand-written pread
        reader, which was not enough faster to keep (docs/results/2026-11-23-memmap-read.md)."""
        shard, row = int(self._shard_of[sample_id]), int(self._row_of[sample_id])
        if shard not in self._shards:
            arr = open_array(self.root / shard_name(shard, self._sharded))
            if tuple(arr.shape[1:]) != SEISMIC_SHAPE or arr.dtype != np.float16:
                raise DataError(f"{arr.filename}: expected float16 rows of {SEISMIC_SHAPE}, found {arr.shape} {arr.dtype}")
            self._shards[shard] = arr
        return torch.from_numpy(np.array(self._shards[shard][row]))

    def velocity(self, sample_id: int) -> np.ndarray:
        """(70, 70) float32 view."""
        return self._velocities()[sample_id]

    def velocities(self, sample_ids: np.ndarray) -> np.ndarray:
        """(len(sample_ids), 70, 70) float32 copy, in the given order."""
        return np.asarray(self._velocities()[np.asarray(sample_ids)], dtype=np.float32)

    def _velocities(self) -> np.ndarray:
        if self._velocity is None:
            self._velocity = open_array(self.root / "velocity.npy")
        return self._velocity

    @property
    def generated(self) -> dict | None:
        """The plan of a generated folder (`fwi augment`, `fwi pseudo-label`); None for a conversion."""
        return self.manifest.get("generated")

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the rows (ids, families, source files), not of the folds: generated folders
        name their source by it, so a moved folder is still found and a reconverted one is not."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.manifest.get("files"), self.manifest.get("generated"), len(self)]).encode())
        digest.update(self.index["sample_id"].to_numpy(np.int64).tobytes())
        digest.update("\n".join(self.index["family"].astype(str)).encode())
        return digest.hexdigest()[:16]

    def __getstate__(self):  # files are reopened in each worker
        return {**self.__dict__, "_shards": {}, "_velocity": None}


class FWITrainDataset(Dataset):
    """Items: seismic (5, 1000, 70) float16 (cast on the device), velocity (70, 70) float32,
    family code (position in `folder.families`), sample id (the row key of a TrainingData).

    Augmentations: the physical flip (flip_prob) and velocity x a <=> time x 1/a (time_scale_prob,
    a uniform in time_scale_range, narrowed so that the map stays within 1500-4500)."""

    def __init__(
        self,
        folder,  # ConvertedFolder or TrainingData
        sample_ids: np.ndarray,
        flip_prob: float = 0.0,
        time_scale_prob: float = 0.0,
        time_scale_range: tuple[float, float] = (0.8, 1.2),
    ):
        self.folder = folder
        self.sample_ids = np.asarray(sample_ids)
        self.flip_prob = flip_prob
        self.time_scale_prob = time_scale_prob
        self.time_scale_range = time_scale_range
        self.family_ids = folder.family_codes()

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sid = int(self.sample_ids[i])
        seismic = self.folder.seismic(sid)  # (5, 1000, 70) float16
        velocity = torch.from_numpy(np.array(self.folder.velocity(sid), dtype=np.float32))
        if self.flip_prob > 0 and torch.rand(()) < self.flip_prob:
            seismic, velocity = flip_seismic(seismic), flip_velocity(velocity)
        if self.time_scale_prob > 0 and torch.rand(()) < self.time_scale_prob:
            low, high = scale_range(velocity, *self.time_scale_range)
            a = low + (high - low) * float(torch.rand(()))
            seismic, velocity = time_scale(seismic, velocity, a)
        return {
            "seismic": seismic,
            "velocity": velocity,
            "family": torch.tensor(self.family_ids[sid]),
            "sample_id": torch.tensor(sid),
        }


class FWITestDataset(Dataset):
    """Items: seismic (5, 1000, 70) float32 and the position of the id in `ids`."""

    def __init__(self, root: str | Path):
        self.folder = TestFolder(root)
        self.ids = self.folder.ids

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"seismic": torch.from_numpy(self.folder.read(i)), "position": torch.tensor(i)}
