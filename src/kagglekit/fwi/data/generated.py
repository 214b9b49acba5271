"""Generated (velocity, simulated seismic) rows as a converted folder (`fwi augment`, `fwi pseudo-label`).

The converted-folder format (fwi/data/layout.py) plus an `origin` column ("blend:12,345",
"pseudo:0a1b2c3d4e") and `fold` = EXCLUDED (-2): a generated row is never validated on;
`TrainingData` decides per fold whether it may train (its parents must not be in the validated fold).

A sharded job (kagglekit.parallel): shard k is made by `make_shard(k, n)` alone (its own seed)
and written in `.<OUT>.partial/` as seismic_k, velocity_k and, last, rows_k (atomically: rows_k
present = shard done). Shards run over torchrun ranks or a process pool; a rerun skips finished
shards; the merge writes velocity.npy, index.csv and manifest.json, then renames the folder
into place. A rerun of a finished folder with the same plan is a no-op that tidies what a kill
left; another plan is refused, naming the folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.folds import EXCLUDED
from kagglekit.fwi.constants import SEISMIC_SHAPE, VELOCITY_SHAPE
from kagglekit.fwi.data.layout import MANIFEST_FILE, VELOCITY_FILE, check_fp16, shard_name, write_index_and_manifest
from kagglekit.fwi.data.readers import DataError
from kagglekit.io import atomic_path, atomic_save_npy, atomic_write_text
from kagglekit.parallel import partial_folder, prepare_partial, publish, run_job


@dataclass
class GeneratedRows:
    velocity: np.ndarray  # (n, 70, 70) float32
    seismic: np.ndarray  # (n, 5, 1000, 70) float32 or float16
    family: list[str]
    origin: list[str]

    def check(self, n: int, where: str) -> None:
        if self.velocity.shape != (n, *VELOCITY_SHAPE) or self.seismic.shape != (n, *SEISMIC_SHAPE):
            raise ValueError(f"{where}: expected {n} rows, got velocity {self.velocity.shape}, seismic {self.seismic.shape}")
        if len(self.family) != n or len(self.origin) != n:
            raise ValueError(f"{where}: {n} rows but {len(self.family)} families and {len(self.origin)} origins")
        for name, arr in (("velocity", self.velocity), ("seismic", self.seismic)):
            if not np.isfinite(arr).all():
                raise DataError(f"{where}: non-finite {name}")
        check_fp16(self.seismic, where)


def format_origin(method: str, parents) -> str:
    """('blend', (12, 345)) -> 'blend:12,345'; parents are sample ids of the source, or test ids."""
    return f"{method}:{','.join(map(str, parents))}"


def parse_origin(origin: str) -> tuple[str, tuple[str, ...]]:
    """'blend:12,345' -> ('blend', ('12', '345')); 'family:' -> ('family', ())."""
    method, _, parents = str(origin).partition(":")
    return method, tuple(p for p in parents.split(",") if p)


MakeShard = Callable[[int, int], GeneratedRows]  # (shard index, rows in it) -> rows; must pickle for workers > 1


def _rows_name(shard: int) -> str:
    return f"rows_{shard:05d}.csv"


def _velocity_name(shard: int) -> str:
    return f"velocity_{shard:05d}.npy"


@dataclass
class GeneratedJob:
    """A generated folder as a `kagglekit.parallel.ShardedJob`."""

    out: Path
    plan: dict  # JSON-able; includes n and shard_size
    make_shard: MakeShard

    @property
    def n_rows(self) -> int:
        return self.plan["n"]

    @property
    def shard_size(self) -> int:
        return self.plan["shard_size"]

    @property
    def partial(self) -> Path:
        return partial_folder(self.out)

    def _rows_in(self, shard: int) -> int:
        return min(self.shard_size, self.n_rows - shard * self.shard_size)

    def finished(self) -> bool:
        if not self.out.exists():
            return False
        manifest = self.out / MANIFEST_FILE
        if not manifest.is_file() or json.loads(manifest.read_text()).get("generated") != self.plan:
            raise DataError(
                f"{self.out}: exists and holds other data (another plan or not a generated folder); choose another --out"
            )
        self._tidy(self.out)
        return True

    def prepare(self) -> None:
        prepare_partial(self.out, self.plan)

    def shards(self) -> list[int]:
        return list(range(-(-self.n_rows // self.shard_size)))

    def total(self) -> int:
        return self.n_rows

    def work(self, shard: int) -> int:
        n_k = self._rows_in(shard)
        if (self.partial / _rows_name(shard)).is_file():
            return n_k
        rows = self.make_shard(shard, n_k)
        rows.check(n_k, f"{self.out} shard {shard}")
        atomic_save_npy(self.partial / shard_name(shard, True), rows.seismic.astype(np.float16))
        atomic_save_npy(self.partial / _velocity_name(shard), rows.velocity.astype(np.float32))
        frame = pd.DataFrame({"family": rows.family, "origin": rows.origin})
        atomic_write_text(self.partial / _rows_name(shard), frame.to_csv(index=False))  # the shard is done
        return n_k

    def merge(self) -> None:
        """velocity.npy and index.csv from the shards, the manifest last, then the folder into place."""
        partial, shards = self.partial, self.shards()
        missing = [k for k in shards if not (partial / _rows_name(k)).is_file()]
        if missing:
            raise DataError(f"{partial}: shards {missing[:5]} are not written yet; rerun the same command to make them")
        frames = []
        with atomic_path(partial / VELOCITY_FILE) as tmp:
            velocity = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(self.n_rows, *VELOCITY_SHAPE))
            for shard in shards:
                velocity[shard * self.shard_size : shard * self.shard_size + self._rows_in(shard)] = np.load(
                    partial / _velocity_name(shard), allow_pickle=False
                )
                frame = pd.read_csv(partial / _rows_name(shard), dtype=str, keep_default_na=False)
                frame["shard"], frame["row"] = shard, np.arange(len(frame))
                frames.append(frame)
            velocity.flush()
            del velocity
        index = pd.concat(frames, ignore_index=True)
        index.insert(0, "sample_id", np.arange(self.n_rows))
        index["fold"] = EXCLUDED
        write_index_and_manifest(partial, index, {"generated": self.plan}, n_shards=len(shards), shard_size=self.shard_size)
        publish(partial, self.out)
        self._tidy(self.out)

    def _tidy(self, folder: Path) -> None:
        """The per-shard velocity and rows files, once merged (a kill may leave them in `out`)."""
        for shard in self.shards():
            (folder / _velocity_name(shard)).unlink(missing_ok=True)
            (folder / _rows_name(shard)).unlink(missing_ok=True)
        (folder / "plan.json").unlink(missing_ok=True)


def write_generated_folder(
    out: str | Path,
    plan: dict,
    n_rows: int,
    shard_size: int,
    make_shard: MakeShard,
    *,
    progress: bool = True,
    desc: str = "generate",
    device: str = "cpu",
    workers: int = 1,
) -> Path:
    """Fill `out` with `n_rows` rows from `make_shard` (deterministic per shard index); `plan`
    (JSON-able) identifies the content: an equal plan resumes or is a no-op. Under torchrun each
    rank makes its share of the shards; alone, `workers` processes do (make_shard must pickle)."""
    out = Path(out)
    if n_rows < 1 or shard_size < 1:
        raise ValueError(f"{out}: need n_rows >= 1 and shard_size >= 1, got {n_rows} and {shard_size}")
    job = GeneratedJob(out, {**plan, "n": n_rows, "shard_size": shard_size}, make_shard)
    return run_job(job, device=device, workers=workers, progress=progress, desc=desc)
