"""Stream a training tree into fp16 seismic memmap(s), a float32 velocity memmap and index.csv.

Output: the converted-folder format (fwi/data/layout.py); index.csv has source_file and
index_in_file, manifest.json what was converted (source files, sizes, options): reruns compare it.

Everything is written into a sibling `.<name>.partial/` folder and renamed into place at the
end, so an interrupted run leaves no half-valid output and a rerun starts clean. Rerunning the
same conversion is a no-op that never touches the folds: runs trained on them stay valid. Only
`recompute_folds` (`kagglekit fwi folds`) reassigns them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.folds import assign_folds
from kagglekit.fwi.constants import SEISMIC_SHAPE, VELOCITY_SHAPE
from kagglekit.fwi.data.layout import (
    FORMAT_VERSION,
    INDEX_FILE,
    MANIFEST_FILE,
    VELOCITY_FILE,
    check_fp16,
    shard_name,
    shard_rows,
    write_index_and_manifest,
)
from kagglekit.fwi.data.readers import DataError, check_finite, find_train_pairs, open_array
from kagglekit.io import atomic_dir, atomic_write_text
from kagglekit.progress import progress_bar

__all__ = ["convert", "recompute_folds", "shard_name"]


def _manifest(src: Path, pairs, shard_size: int | None) -> dict:
    files = []
    for p in pairs:
        for path in (p.seismic_path, p.velocity_path):
            st = path.stat()
            files.append([str(path.relative_to(src)), st.st_size, st.st_mtime_ns])
    return {"format": FORMAT_VERSION, "source": str(src.resolve()), "files": files, "shard_size": shard_size}


def _same_conversion(a: dict, b: dict) -> bool:
    keys = ("format", "files", "shard_size")
    return all(a.get(k) == b.get(k) for k in keys)


def convert(
    src: str | Path,
    out: str | Path,
    *,
    shard_size: int | None = None,
    n_folds: int = 5,
    holdout: float = 0.0,
    seed: int = 0,
    chunk: int = 32,
    progress: bool = True,
) -> Path:
    """Convert the tree at `src` into `out`; a no-op if `out` already holds this conversion with
    these fold options (other fold options are refused: `recompute_folds` changes folds)."""
    src, out = Path(src), Path(out)
    pairs = find_train_pairs(src)
    manifest = _manifest(src, pairs, shard_size)
    fold_options = {"n_folds": n_folds, "seed": seed, "holdout": holdout}
    if out.exists():
        existing = out / MANIFEST_FILE
        if existing.is_file() and _same_conversion(previous := json.loads(existing.read_text()), manifest):
            if previous.get("folds", fold_options) != fold_options:
                raise DataError(
                    f"{out}: holds this conversion with folds {previous['folds']}, not {fold_options}; "
                    f"change folds with `kagglekit fwi folds {out} ...` (runs trained on the old folds will refuse to resume)"
                )
            return out
        if existing.is_file():
            raise DataError(f"{out}: holds a different conversion (source files or options differ); choose another OUT")
        if any(out.iterdir()):
            raise DataError(f"{out}: exists, is not empty and is not a kagglekit conversion")
        out.rmdir()
    if shard_size is not None and shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")

    n_total = sum(p.n for p in pairs)
    per_shard = shard_size or n_total
    n_shards = max(1, -(-n_total // per_shard))
    sharded = shard_size is not None
    with atomic_dir(out) as partial:
        index = _write(partial, src, pairs, per_shard, n_shards, sharded, n_total, chunk, progress)
        index["fold"] = assign_folds(index["family"].to_numpy(), n_folds=n_folds, seed=seed, holdout=holdout)
        write_index_and_manifest(partial, index, {**manifest, "folds": fold_options}, n_shards=n_shards, shard_size=shard_size)
    return out


def _write(
    partial: Path, src: Path, pairs, per_shard: int, n_shards: int, sharded: bool, n_total: int, chunk: int, progress: bool
) -> pd.DataFrame:
    """Stream every pair into the memmaps of `partial`; returns the index (without folds)."""
    velocity = np.lib.format.open_memmap(partial / VELOCITY_FILE, mode="w+", dtype=np.float32, shape=(n_total, *VELOCITY_SHAPE))
    shards = []
    for s in range(n_shards):
        n_s = min(per_shard, n_total - s * per_shard)
        shards.append(
            np.lib.format.open_memmap(partial / shard_name(s, sharded), mode="w+", dtype=np.float16, shape=(n_s, *SEISMIC_SHAPE))
        )

    rows = []
    pos = 0
    bar = progress_bar(total=n_total, desc="convert", unit="sample", disable=not progress)
    for pair in pairs:
        seis, vel = open_array(pair.seismic_path), open_array(pair.velocity_path)
        for start in range(0, pair.n, chunk):
            stop = min(start + chunk, pair.n)
            s_chunk = np.asarray(seis[start:stop], dtype=np.float32)  # (c, 5, 1000, 70)
            check_finite(pair.seismic_path, s_chunk, start)
            check_fp16(s_chunk, f"{pair.seismic_path} samples {start}..{stop - 1}")
            v_chunk = np.asarray(vel[start:stop], dtype=np.float32).reshape(stop - start, *VELOCITY_SHAPE)
            check_finite(pair.velocity_path, v_chunk, start)
            for k in range(stop - start):
                g = pos + k
                shards[g // per_shard][g % per_shard] = s_chunk[k]
            velocity[pos : pos + stop - start] = v_chunk
            for i in range(start, stop):
                rows.append((pos + i - start, pair.family, str(pair.seismic_path.relative_to(src)), i))
            pos += stop - start
            bar.update(stop - start)
    bar.close()
    for arr in (velocity, *shards):
        arr.flush()
    del velocity, shards

    index = pd.DataFrame(rows, columns=["sample_id", "family", "source_file", "index_in_file"])
    index["shard"], index["row"] = shard_rows(len(index), per_shard)
    return index


def recompute_folds(out: str | Path, n_folds: int = 5, seed: int = 0, holdout: float = 0.0) -> pd.DataFrame:
    """Reassign the fold column of OUT/index.csv (atomically) without reconverting; the manifest
    records the new options. Runs trained on the old folds refuse to resume (fold signature)."""
    path, manifest_path = Path(out) / INDEX_FILE, Path(out) / MANIFEST_FILE
    if not path.is_file() or not manifest_path.is_file():
        raise DataError(f"{Path(out)}: no index.csv / manifest.json; run `kagglekit fwi convert` first")
    index = pd.read_csv(path)
    index["fold"] = assign_folds(index["family"].to_numpy(), n_folds=n_folds, seed=seed, holdout=holdout)
    atomic_write_text(path, index.to_csv(index=False))
    manifest = json.loads(manifest_path.read_text())
    manifest["folds"] = {"n_folds": n_folds, "seed": seed, "holdout": holdout}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    return index
