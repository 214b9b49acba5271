"""A complete synthetic competition folder in the exact Kaggle layout, simulated with deepwave.

OUT/
  train_samples/<Family>/...   the real file names of every family (data/dataN + model/modelN,
                               or seisX_Y_Z + velX_Y_Z for the Fault families), float32
  test/<10-hex-id>.npy         (5, 1000, 70) float32, one per id
  sample_submission.csv        oid_ypos, x_1, x_3, ..., x_69 (one row per id and depth row)
  test_labels.npy              hidden test velocities (N, 70, 70) float32, rows in test_ids.csv order
  test_ids.csv                 id, family
  synthetic.json               the parameters; a rerun with the same ones is a no-op

A sharded job (kagglekit.parallel): one shard per training file and per `batch` test maps, each
seeded on its own and written straight to its final name in `.OUT.partial/` (atomically: present
= done). Shards run over torchrun ranks or `workers` single-threaded processes; the merge writes
the labels, ids, sample submission and stamp, then renames the folder into place. The files do
not depend on the number of workers or ranks; a killed run resumes when rerun.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.errors import UserError
from kagglekit.fwi.constants import FAMILIES, GRID, SCORED_COLUMNS, SEISMIC_SHAPE
from kagglekit.fwi.physics import generate_family
from kagglekit.fwi.physics.simulate import simulate_maps
from kagglekit.io import atomic_path, atomic_save_npy, atomic_write_text
from kagglekit.parallel import partial_folder, prepare_partial, publish, run_job, worker_device


def kaggle_train_files(family: str) -> list[tuple[str, str]]:
    """(seismic, velocity) relative paths of the two files of a family, as in train_samples/."""
    if "Fault" in family:
        tags = ("2_1_0", "4_1_0") if family.endswith("_A") else ("6_1_0", "8_1_0")
        return [(f"seis{t}.npy", f"vel{t}.npy") for t in tags]
    return [(f"data/data{k}.npy", f"model/model{k}.npy") for k in (1, 2)]


KAGGLE_TRAIN_FILES = {family: kaggle_train_files(family) for family in FAMILIES}

SUBMISSION_COLUMNS = ["oid_ypos"] + [f"x_{x}" for x in SCORED_COLUMNS]


def _test_ids(n: int, rng: np.random.Generator) -> list[str]:
    ids: set[str] = set()
    while len(ids) < n:
        ids.add("".join(f"{d:x}" for d in rng.integers(0, 16, 10)))
    return sorted(ids)


def write_sample_submission(path: Path, ids: list[str], fill: float = 3000.0) -> None:
    rows = [f"{i}_y_{y}" for i in ids for y in range(GRID)]
    frame = pd.DataFrame({"oid_ypos": rows})
    for col in SUBMISSION_COLUMNS[1:]:
        frame[col] = fill
    frame.to_csv(path, index=False)


@dataclass
class SyntheticJob:
    """The synthetic competition as a `kagglekit.parallel.ShardedJob`; shards are ("train", family
    index, file index) and ("test", first map)."""

    out: Path
    per_file: int
    n_test: int
    seed: int
    batch: int
    backend: str
    device: str = "cpu"

    @property
    def stamp(self) -> dict:
        params = {"per_file": self.per_file, "n_test": self.n_test, "seed": self.seed, "version": 1}
        if self.backend != "deepwave":  # folders made before backends existed keep their stamp
            params["backend"] = self.backend
        return params

    @property
    def partial(self) -> Path:
        return partial_folder(self.out)

    def finished(self) -> bool:
        stamp = self.out / "synthetic.json"
        if stamp.is_file() and json.loads(stamp.read_text()) == self.stamp:
            (self.out / "plan.json").unlink(missing_ok=True)  # left by a kill right after the rename
            return True
        if self.out.exists() and any(self.out.iterdir()):
            raise UserError(f"{self.out}: exists with other content or parameters; remove it or choose another folder")
        return False

    def prepare(self) -> None:
        if self.out.exists():
            self.out.rmdir()  # empty (finished() refused anything else): the rename replaces it
        prepare_partial(self.out, {**self.stamp, "batch": self.batch})

    def shards(self) -> list[tuple]:
        train = [("train", fi, fj) for fi in range(len(FAMILIES)) for fj in range(2)]
        return train + [("test", start) for start in range(0, self.n_test, self.batch)]

    def total(self) -> int:
        return len(FAMILIES) * 2 * self.per_file + self.n_test

    @functools.cached_property
    def test_set(self) -> tuple[list[str], list[str], np.ndarray]:
        """ids, families and hidden maps (n_test, 70, 70) of the test set, from the seed alone."""
        rng = np.random.default_rng([self.seed, 12345])
        ids = _test_ids(self.n_test, rng)
        families = [FAMILIES[k % len(FAMILIES)] for k in rng.permutation(self.n_test)]
        labels = np.zeros((self.n_test, GRID, GRID), dtype=np.float32)
        for fi, family in enumerate(FAMILIES):
            rows = [k for k, f in enumerate(families) if f == family]
            labels[rows] = generate_family(family, len(rows), seed=[self.seed, fi, 99])
        return ids, families, labels

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "test_set"}

    def _outputs(self, shard: tuple) -> list[Path]:
        """The files a shard writes; the train seismic file last, so present = done."""
        if shard[0] == "train":
            family = FAMILIES[shard[1]]
            seis_name, _ = KAGGLE_TRAIN_FILES[family][shard[2]]
            return [self.partial / "train_samples" / family / seis_name]
        ids = self.test_set[0][shard[1] : shard[1] + self.batch]
        return [self.partial / "test" / f"{i}.npy" for i in ids]

    def _done(self, shard: tuple) -> bool:
        return all(path.is_file() for path in self._outputs(shard))

    def work(self, shard: tuple) -> int:
        device = worker_device(self.device)
        if shard[0] == "train":
            _, fi, fj = shard
            family = FAMILIES[fi]
            seis_name, vel_name = KAGGLE_TRAIN_FILES[family][fj]
            seis_path = self.partial / "train_samples" / family / seis_name
            if not self._done(shard):
                velocities = generate_family(family, self.per_file, seed=[self.seed, fi, fj])  # (n, 70, 70)
                atomic_save_npy(self.partial / "train_samples" / family / vel_name, velocities[:, None])  # (n, 1, 70, 70)
                with atomic_path(seis_path) as tmp:
                    seismic = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(self.per_file, *SEISMIC_SHAPE))
                    simulate_maps(velocities, device=device, batch=self.batch, backend=self.backend, out=seismic)
                    seismic.flush()
                    del seismic
            return self.per_file
        start = shard[1]
        ids, _, labels = self.test_set
        stop = min(start + self.batch, self.n_test)
        if not self._done(shard):
            records, _ = simulate_maps(labels[start:stop], device=device, batch=self.batch, backend=self.backend)
            for path, record in zip(self._outputs(shard), records, strict=True):
                atomic_save_npy(path, record)  # (5, 1000, 70)
        return stop - start

    def merge(self) -> None:
        partial = self.partial
        missing = [s for s in self.shards() if not self._done(s)]
        if missing:
            raise UserError(f"{partial}: shards {missing[:3]} are not written yet; rerun the same command to make them")
        ids, families, labels = self.test_set
        (partial / "test").mkdir(exist_ok=True)
        atomic_save_npy(partial / "test_labels.npy", labels)
        atomic_write_text(partial / "test_ids.csv", pd.DataFrame({"id": ids, "family": families}).to_csv(index=False))
        with atomic_path(partial / "sample_submission.csv") as tmp:
            write_sample_submission(tmp, ids)
        atomic_write_text(partial / "synthetic.json", json.dumps(self.stamp))
        publish(partial, self.out)


def make_competition(
    out: str | Path,
    per_file: int = 50,
    n_test: int = 100,
    seed: int = 0,
    batch: int = 32,
    progress: bool = True,
    backend: str = "deepwave",
    *,
    device: str = "cpu",
    workers: int = 1,
) -> Path:
    """Write the synthetic competition to `out`; a no-op if it exists with these parameters, a
    resume if a run with them was interrupted.

    backend="openfwi" simulates with the OpenFWI scheme itself (exact, about 10x slower on CPU).
    workers > 1: that many single-threaded processes (cpu) or one per GPU (cuda); under torchrun
    each rank takes its share instead."""
    for name, value in (("--per-file", per_file), ("--n-test", n_test), ("--batch", batch), ("--workers", workers)):
        if value < (0 if name == "--n-test" else 1):
            raise UserError(f"fwi simulate: {name} must be >= {0 if name == '--n-test' else 1}, got {value}")
    job = SyntheticJob(Path(out), per_file, n_test, seed, batch, backend, device)
    return run_job(job, device=device, workers=workers, progress=progress, desc="simulate")
