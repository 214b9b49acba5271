"""Write generated (velocity, simulated seismic) rows as a converted folder, shard by shard.

Same format as `fwi convert` (fp16 seismic shards, velocity.npy, index.csv, manifest.json) plus an
`origin` column ("blend:12,345", "pseudo:0a1b2c3d4e") and `fold` = EXCLUDED (-2): a generated row
is never validated on; `TrainingData` decides per fold whether it may train (its parents must not
be in the validated fold).

Resumable: shards are built in `.<OUT>.partial/`, each from its own seed, and a shard counts as
done once its rows file is written (last, atomically). A rerun skips finished shards; a rerun of a
finished folder with the same plan is a no-op; another plan is refused, naming the folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.folds import EXCLUDED
from kagglekit.fwi.constants import SEISMIC_SHAPE, VELOCITY_SHAPE
from kagglekit.fwi.data.convert import FORMAT_VERSION, FP16_MAX, shard_name
from kagglekit.fwi.data.readers import DataError
from kagglekit.io import atomic_save_npy, atomic_write_text
from kagglekit.progress import progress_bar


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
        peak = float(np.abs(self.seismic).max())
        if peak > FP16_MAX:
            raise DataError(f"{where}: |seismic| {peak:g} overflows float16 (max {FP16_MAX})")


def format_origin(method: str, parents) -> str:
    """('blend', (12, 345)) -> 'blend:12,345'; parents are sample ids of the source, or test ids."""
    return f"{method}:{','.join(map(str, parents))}"


def parse_origin(origin: str) -> tuple[str, tuple[str, ...]]:
    """'blend:12,345' -> ('blend', ('12', '345')); 'family:' -> ('family', ())."""
    method, _, parents = str(origin).partition(":")
    return method, tuple(p for p in parents.split(",") if p)


MakeShard = Callable[[int, int], GeneratedRows]  # (shard index, rows in it) -> rows


def _rows_name(shard: int) -> str:
    return f"rows_{shard:05d}.csv"


def _velocity_name(shard: int) -> str:
    return f"velocity_{shard:05d}.npy"


def write_generated_folder(
    out: str | Path,
    plan: dict,
    n_rows: int,
    shard_size: int,
    make_shard: MakeShard,
    *,
    progress: bool = True,
    desc: str = "generate",
) -> Path:
    """Fill `out` with `n_rows` rows from `make_shard` (deterministic per shard index); `plan`
    (JSON-able) identifies the content: an equal plan resumes or is a no-op."""
    out = Path(out)
    if n_rows < 1 or shard_size < 1:
        raise ValueError(f"{out}: need n_rows >= 1 and shard_size >= 1, got {n_rows} and {shard_size}")
    plan = {**plan, "n": n_rows, "shard_size": shard_size}
    manifest_path = out / "manifest.json"
    if out.exists():
        if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("generated") == plan:
            return out
        raise DataError(f"{out}: exists and holds other data (another plan or not a generated folder); choose another --out")
    partial = out.with_name(f".{out.name}.partial")
    plan_path = partial / "plan.json"
    if partial.exists():
        if not plan_path.is_file() or json.loads(plan_path.read_text()) != plan:
            raise DataError(
                f"{partial}: an unfinished run with other settings; remove it to start over, or rerun with its plan.json"
            )
    else:
        partial.mkdir(parents=True)
        atomic_write_text(plan_path, json.dumps(plan, indent=1))

    n_shards = -(-n_rows // shard_size)
    bar = progress_bar(total=n_rows, desc=desc, unit="map", disable=not progress)
    for shard in range(n_shards):
        n_k = min(shard_size, n_rows - shard * shard_size)
        if not (partial / _rows_name(shard)).is_file():
            rows = make_shard(shard, n_k)
            rows.check(n_k, f"{out} shard {shard}")
            atomic_save_npy(partial / shard_name(shard, True), rows.seismic.astype(np.float16))
            atomic_save_npy(partial / _velocity_name(shard), rows.velocity.astype(np.float32))
            frame = pd.DataFrame({"family": rows.family, "origin": rows.origin})
            atomic_write_text(partial / _rows_name(shard), frame.to_csv(index=False))  # the shard is done
        bar.update(n_k)
    bar.close()
    _finish(partial, out, plan, n_rows, n_shards, shard_size)
    return out


def _finish(partial: Path, out: Path, plan: dict, n_rows: int, n_shards: int, shard_size: int) -> None:
    """velocity.npy and index.csv from the shards, the manifest last, then the folder into place."""
    frames = []
    velocity = np.lib.format.open_memmap(
        partial / "velocity.npy.tmp", mode="w+", dtype=np.float32, shape=(n_rows, *VELOCITY_SHAPE)
    )
    for shard in range(n_shards):
        part = np.load(partial / _velocity_name(shard))
        velocity[shard * shard_size : shard * shard_size + len(part)] = part
        frame = pd.read_csv(partial / _rows_name(shard), dtype=str, keep_default_na=False)
        frame["shard"], frame["row"] = shard, np.arange(len(frame))
        frames.append(frame)
    velocity.flush()
    del velocity
    os.replace(partial / "velocity.npy.tmp", partial / "velocity.npy")
    index = pd.concat(frames, ignore_index=True)
    index.insert(0, "sample_id", np.arange(n_rows))
    index["fold"] = EXCLUDED
    index.to_csv(partial / "index.csv", index=False)
    manifest = {"format": FORMAT_VERSION, "shard_size": shard_size, "n": n_rows, "n_shards": n_shards, "generated": plan}
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for shard in range(n_shards):
        (partial / _velocity_name(shard)).unlink()
        (partial / _rows_name(shard)).unlink()
    (partial / "plan.json").unlink()
    os.replace(partial, out)
