"""The converted-folder format, one owner for its writers (`fwi convert`, generated folders) and
its reader (`ConvertedFolder`):

  seismic.npy | seismic_00000.npy ...  (n, 5, 1000, 70) float16, one file or shards of shard_size rows
  velocity.npy                         (N, 70, 70) float32
  index.csv                            sample_id, family, [source_file, index_in_file | origin], shard, row, fold
  manifest.json                        format, n, n_shards, shard_size, and what was converted or
                                       generated; written last: a folder without it is incomplete
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.fwi.data.readers import DataError

FORMAT_VERSION = 1
FP16_MAX = 65504.0
VELOCITY_FILE = "velocity.npy"
INDEX_FILE = "index.csv"
MANIFEST_FILE = "manifest.json"
INDEX_COLUMNS = ("sample_id", "family", "shard", "row", "fold")  # every index.csv has these


def shard_name(shard: int, sharded: bool) -> str:
    return f"seismic_{shard:05d}.npy" if sharded else "seismic.npy"


def check_fp16(seismic: np.ndarray, where: str) -> None:
    """Refuse seismic that float16 cannot hold."""
    peak = float(np.abs(seismic).max()) if seismic.size else 0.0
    if peak > FP16_MAX:
        raise DataError(f"{where}: |value| {peak:g} overflows float16 (max {FP16_MAX})")


def shard_rows(n: int, per_shard: int) -> tuple[np.ndarray, np.ndarray]:
    """(shard, row) of sample ids 0..n-1 stored per_shard rows to a file."""
    ids = np.arange(n)
    return ids // per_shard, ids % per_shard


def write_index_and_manifest(folder: Path, index: pd.DataFrame, manifest: dict, *, n_shards: int, shard_size: int | None) -> None:
    """index.csv, then manifest.json (the completion marker) with the format's own fields."""
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        raise ValueError(f"{folder}/{INDEX_FILE}: missing columns {missing}")
    index.to_csv(folder / INDEX_FILE, index=False)
    record = {"format": FORMAT_VERSION, **manifest, "shard_size": shard_size, "n": len(index), "n_shards": n_shards}
    (folder / MANIFEST_FILE).write_text(json.dumps(record, indent=1))
