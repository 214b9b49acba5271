"""The converted folders one run trains on (`data.roots`), seen as one table of rows.

Row keys: the first folder's sample ids, then each next folder's ids shifted past the previous
ones, so a single-folder run keys its OOF rows by sample id as before.

Which rows train and validate fold f:
- rows of a conversion (`fwi convert`): by their `fold` column, as always;
- generated rows (`fwi augment`, `fwi pseudo-label`) never validate. They train fold f unless a
  parent is in fold f, the holdout or no fold; parents are looked up in the source folder, which
  must be one of the roots (found by fingerprint), so reassigned folds (`fwi folds`) stay honest.
  Rows without fold parents (generator maps, pseudo-labels of test maps) train every fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kagglekit.folds import EXCLUDED, fold_signature, split_for_fold
from kagglekit.fwi.constants import VELOCITY_SHAPE
from kagglekit.fwi.data.datasets import ConvertedFolder, FamilyColumn
from kagglekit.fwi.data.generated import parse_origin
from kagglekit.fwi.data.readers import DataError


class TrainingData(FamilyColumn):
    def __init__(self, roots: list[str]):
        if not roots:
            raise DataError("data.roots: no folder given")
        self.folders = [ConvertedFolder(r) for r in roots]
        seen: dict[str, str] = {}
        for f in self.folders:
            if f.fingerprint in seen:
                raise DataError(f"data.roots: {f.root} and {seen[f.fingerprint]} hold the same data; list it once")
            seen[f.fingerprint] = str(f.root)
            if not np.array_equal(f.index["sample_id"].to_numpy(), np.arange(len(f))):
                raise DataError(f"{f.root}/index.csv: sample_id must be 0..{len(f) - 1} in order")
        if self.folders[0].generated is not None:
            raise DataError(f"data.roots: the first folder ({self.folders[0].root}) must be a conversion, not generated rows")
        self.offsets = np.cumsum([0] + [len(f) for f in self.folders])  # (n_folders + 1,)
        parts = []
        for k, f in enumerate(self.folders):
            part = f.index[["sample_id", "family", "fold"]].copy()
            part["key"] = part["sample_id"] + self.offsets[k]
            part["root"] = k
            part["generated"] = f.generated is not None
            parts.append(part)
        self.index = pd.concat(parts, ignore_index=True)  # row i has key i
        self._root_of = self.index["root"].to_numpy()
        self._parent_mask, self._parent_outside = self._resolve_parent_folds()

    def __len__(self) -> int:
        return len(self.index)

    def _locate(self, key: int) -> tuple[ConvertedFolder, int]:
        root = int(self._root_of[key])
        return self.folders[root], int(key - self.offsets[root])

    def seismic(self, key: int) -> torch.Tensor:
        folder, sid = self._locate(key)
        return folder.seismic(sid)

    def velocity(self, key: int) -> np.ndarray:
        folder, sid = self._locate(key)
        return folder.velocity(sid)

    def velocities(self, keys: np.ndarray) -> np.ndarray:
        """(len(keys), 70, 70) float32, one fancy-indexed read per folder."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.empty((len(keys), *VELOCITY_SHAPE), dtype=np.float32)
        roots = self._root_of[keys]
        for k, folder in enumerate(self.folders):
            chosen = roots == k
            if chosen.any():
                out[chosen] = folder.velocities(keys[chosen] - self.offsets[k])
        return out

    def _source_of(self, folder: ConvertedFolder) -> ConvertedFolder:
        source = folder.generated.get("source", {})
        for candidate in self.folders:
            if candidate.generated is None and candidate.fingerprint == source.get("fingerprint"):
                return candidate
        raise DataError(
            f"{folder.root}: was generated from {source.get('path')} (fingerprint {source.get('fingerprint')}); "
            "list that converted folder in data.roots too: its folds decide which folds may train on these rows"
        )

    def _resolve_parent_folds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row: a bit mask of its parents' cross-validation folds (bit f: a parent in fold f),
        and whether a parent is in the holdout or in no fold. Zero / False for rows without
        training parents (conversions, generator maps, pseudo-labels)."""
        mask = np.zeros(len(self.index), dtype=np.int64)
        outside = np.zeros(len(self.index), dtype=bool)
        for k, folder in enumerate(self.folders):
            if folder.generated is None or folder.generated.get("kind") != "augment":
                continue  # pseudo-labels' parents are test maps, not training rows
            source_folds = self._source_of(folder).index["fold"].to_numpy()
            if source_folds.max() >= 63:
                raise DataError(f"{self._source_of(folder).root}: more than 63 folds are not supported")
            start = self.offsets[k]
            for row, origin in enumerate(folder.index["origin"].astype(str)):
                for parent_fold in source_folds[[int(p) for p in parse_origin(origin)[1]]]:
                    if parent_fold < 0:
                        outside[start + row] = True
                    else:
                        mask[start + row] |= 1 << int(parent_fold)
        return mask, outside

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(train keys, validation keys) for `fold` (-1: train on every fold, validate the holdout)."""
        folds = self.index["fold"].to_numpy()
        generated = self.index["generated"].to_numpy()
        train, valid = split_for_fold(np.where(generated, EXCLUDED, folds), fold, where=str(self.folders[0].root / "index.csv"))
        clear_of_fold = np.ones(len(folds), dtype=bool) if fold < 0 else (self._parent_mask >> fold) & 1 == 0
        usable = np.flatnonzero(generated & ~self._parent_outside & clear_of_fold)
        return np.sort(np.concatenate([train, usable])), valid

    def repeat(self, keys: np.ndarray, repeats: list[int]) -> np.ndarray:
        """`keys` with each folder's keys listed repeats[folder] times (0 drops the folder)."""
        if len(repeats) != len(self.folders) or min(repeats) < 0:
            raise DataError(f"data.repeats: expected {len(self.folders)} counts >= 0 (one per data.roots entry), got {repeats}")
        roots = self._root_of[keys]
        return np.sort(np.concatenate([np.repeat(keys[roots == k], r) for k, r in enumerate(repeats)]))

    def fold_signature(self) -> str:
        """Changes when folds, or the folders read, change (one folder: as before roots existed)."""
        if len(self.folders) == 1:
            return fold_signature(self.index["sample_id"].to_numpy(), self.index["fold"].to_numpy())
        ids = [f"{self.folders[r].fingerprint}:{s}" for r, s in zip(self._root_of, self.index["sample_id"], strict=True)]
        return fold_signature(ids, self.index["fold"].to_numpy())
