"""Readers for the competition training tree, OpenFWI release files and the test folder.

Every file is checked where it enters: shape, dtype and (when streamed) finiteness; a bad file
raises DataError naming the file, what was expected and what was found.

Layouts handled (any folder depth; the family is the folder that holds the files, or the parent
of `data/` and `model/`):
  <Family>/data/dataN.npy  + <Family>/model/modelN.npy      (Vel and Style families)
  <Family>/dataN.npy       + <Family>/modelN.npy            (flat re-uploads)
  <Family>/seisX_Y_Z.npy   + <Family>/velX_Y_Z.npy          (Fault families)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kagglekit.errors import UserError
from kagglekit.fwi.constants import FAMILIES, SEISMIC_SHAPE, VELOCITY_SHAPE
from kagglekit.io import not_npy

ALLOWED_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
TEST_ID = re.compile(r"^[0-9a-f]{10}$")


class DataError(UserError):
    """A data file is missing or not what the competition format says."""


@dataclass(frozen=True)
class TrainPair:
    family: str
    seismic_path: Path
    velocity_path: Path
    n: int  # samples in the pair


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def open_array(path: Path) -> np.ndarray:
    """Memory-map a .npy file, or raise DataError naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    found = not_npy(path)
    if found:  # numpy's own error would suggest loading a pickle unsafely
        raise DataError(f"{path}: expected a .npy array, found {found} (never unpickled)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # numpy raises several types for damaged headers
        raise DataError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})") from exc


def check_seismic(path: Path, arr: np.ndarray) -> None:
    if arr.dtype not in ALLOWED_DTYPES:
        raise DataError(f"{path}: expected float32 or float16 seismic, found dtype {arr.dtype}")
    if arr.ndim != 4 or tuple(arr.shape[1:]) != SEISMIC_SHAPE:
        raise DataError(f"{path}: expected seismic shape (N, 5, 1000, 70), found {tuple(arr.shape)}")


def check_velocity(path: Path, arr: np.ndarray) -> None:
    if arr.dtype not in ALLOWED_DTYPES:
        raise DataError(f"{path}: expected float32 or float16 velocity, found dtype {arr.dtype}")
    ok = (arr.ndim == 4 and arr.shape[1] == 1 and tuple(arr.shape[2:]) == VELOCITY_SHAPE) or (
        arr.ndim == 3 and tuple(arr.shape[1:]) == VELOCITY_SHAPE
    )
    if not ok:
        raise DataError(f"{path}: expected velocity shape (N, 1, 70, 70), found {tuple(arr.shape)}")


def check_finite(path: Path, chunk: np.ndarray, start: int) -> None:
    finite = np.isfinite(chunk)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise DataError(f"{path}: non-finite value {chunk[tuple(bad)]} at sample {start + int(bad[0])}")


def _pairs_in_folder(folder: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for seis in sorted(folder.glob("seis*.npy"), key=_natural_key):
        pairs.append((seis, folder / ("vel" + seis.name[len("seis") :])))
    for data in sorted(folder.glob("data*.npy"), key=_natural_key):
        pairs.append((data, folder / ("model" + data.name[len("data") :])))
    data_dir, model_dir = folder / "data", folder / "model"
    if data_dir.is_dir():
        for data in sorted(data_dir.glob("data*.npy"), key=_natural_key):
            pairs.append((data, model_dir / ("model" + data.name[len("data") :])))
    return pairs


def find_train_pairs(root: str | Path) -> list[TrainPair]:
    """All (seismic, velocity) file pairs under root, checked and sorted by family then file."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: training folder not found")
    pairs: list[TrainPair] = []
    folders = sorted({root, *(p for p in root.rglob("*") if p.is_dir())})
    for folder in folders:
        if folder.name in ("data", "model") and folder.parent != root:
            continue  # handled with their parent family folder
        for seis_path, vel_path in _pairs_in_folder(folder):
            family = folder.name if folder != root else root.name
            seis, vel = open_array(seis_path), open_array(vel_path)
            check_seismic(seis_path, seis)
            check_velocity(vel_path, vel)
            if seis.shape[0] != vel.shape[0]:
                raise DataError(f"{seis_path}: {seis.shape[0]} samples but its velocity file {vel_path} has {vel.shape[0]}")
            pairs.append(TrainPair(family, seis_path, vel_path, int(seis.shape[0])))
    if not pairs:
        raise DataError(f"{root}: no seismic/velocity pairs found (expected data*/model*, seis*/vel* .npy files)")
    return pairs


class OpenFWIFiles:
    """Any number of OpenFWI release files (float32 or float16), in any family folders."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.pairs = find_train_pairs(self.root)

    def __len__(self) -> int:
        return sum(p.n for p in self.pairs)

    @property
    def families(self) -> list[str]:
        return sorted({p.family for p in self.pairs})


class KaggleTrainSamples(OpenFWIFiles):
    """The competition's `train_samples/` tree: the ten families, each with its two files."""

    def __init__(self, root: str | Path):
        super().__init__(root)
        missing = [f for f in FAMILIES if f not in self.families]
        if missing:
            raise DataError(f"{self.root}: not a complete train_samples tree; missing families {missing}")


class TestFolder:
    """`test/<id>.npy`, one (5, 1000, 70) array per id; ids sorted."""

    __test__ = False  # not a pytest class

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: test folder not found")
        self.paths = sorted(self.root.glob("*.npy"))
        if not self.paths:
            raise DataError(f"{self.root}: no .npy files")
        bad = [p.name for p in self.paths if not TEST_ID.match(p.stem)]
        if bad:
            raise DataError(f"{self.root}: file names must be 10 lowercase hex chars + .npy, found {bad[:3]}")
        self.ids = [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        """(5, 1000, 70) float32, checked."""
        path = self.paths[i]
        arr = open_array(path)
        if arr.dtype not in ALLOWED_DTYPES or tuple(arr.shape) != SEISMIC_SHAPE:
            raise DataError(f"{path}: expected (5, 1000, 70) float32, found {tuple(arr.shape)} {arr.dtype}")
        out = np.array(arr, dtype=np.float32)  # a writable copy
        check_finite(path, out, 0)
        return out
