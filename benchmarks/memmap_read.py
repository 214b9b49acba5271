"""Per-sample read throughput of the converted format: the np.memmap slice ConvertedFolder uses,
a hand-written pread reader (the alternative it replaced), and float32 files read with np.load.

    .venv/bin/python benchmarks/memmap_read.py [--samples 400] [--dir /tmp/kk_bench_read]

Each reads a random permutation of the samples into a (5, 1000, 70) float16 tensor (the engine
casts to fp32 on the device). Measured with a warm page cache and, where
/proc/sys/vm/drop_caches is writable (root), cold. Every row comes from the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from kagglekit.fwi.data.datasets import ConvertedFolder

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--samples", type=int, default=400, help="samples in the test file")
    parser.add_argument("--dir", default="/tmp/kk_bench_read", help="scratch folder (removed afterwards)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per reader (best is kept)")
    args = parser.parse_args()
    root = Path(args.dir)
    shutil.rmtree(root, ignore_errors=True)
    (root / "files").mkdir(parents=True)
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(root / "seismic.npy", mode="w+", dtype=np.float16, shape=(args.samples, 5, 1000, 70))
    for i in range(args.samples):
        x = (rng.standard_normal((5, 1000, 70)) * 5).astype(np.float32)
        mm[i] = x
        np.save(root / "files" / f"{i:06d}.npy", x)
    mm.flush()
    del mm
    order = rng.permutation(args.samples)

    import json

    import pandas as pd

    (root / "manifest.json").write_text(json.dumps({"shard_size": None}))
    pd.DataFrame(
        {"sample_id": np.arange(args.samples), "family": "F", "shard": 0, "row": np.arange(args.samples), "fold": 0}
    ).to_csv(root / "index.csv", index=False)

    def read_ours():  # ConvertedFolder.seismic: an np.memmap slice copied into a tensor
        folder = ConvertedFolder(root)
        for i in order:
            folder.seismic(int(i))

    def read_pread():  # the alternative: one os.preadv per sample into a fresh tensor
        arr = np.load(root / "seismic.npy", mmap_mode="r")
        offset, row_bytes = int(arr.offset), 5 * 1000 * 70 * 2
        fd = os.open(root / "seismic.npy", os.O_RDONLY)
        try:
            for i in order:
                out = torch.empty((5, 1000, 70), dtype=torch.float16)
                os.preadv(fd, [out.numpy()], offset + int(i) * row_bytes)
        finally:
            os.close(fd)

    def read_files():
        for i in order:
            torch.from_numpy(np.load(root / "files" / f"{i:06d}.npy"))

    can_drop = _drop_caches()
    modes = [("warm page cache", False)] + ([("cold (page cache dropped)", True)] if can_drop else [])
    print(f"{args.samples} samples of (5, 1000, 70), random order, best of {args.repeats}")
    print("| cache | reader | samples/s | vs memmap |")
    print("|---|---|---:|---:|")
    for label, cold in modes:
        results = {}
        for name, fn in (
            ("float16 np.memmap slice (ConvertedFolder)", read_ours),
            ("float16 file, os.preadv per sample", read_pread),
            ("float32 file per sample (np.load)", read_files),
        ):
            times = []
            for _ in range(args.repeats):
                if cold:
                    _drop_caches()
                else:
                    fn()  # make sure it is cached
                times.append(_time(fn))
            results[name] = args.samples / min(times)
        base = results["float16 np.memmap slice (ConvertedFolder)"]
        for name, rate in results.items():
            print(f"| {label} | {name} | {rate:.0f} | {rate / base:.2f}x |")
    if not can_drop:
        print("(cold-cache rows need root to write /proc/sys/vm/drop_caches)")
    shutil.rmtree(root)


def _drop_caches() -> bool:
    try:
        os.sync()
        DROP_CACHES.write_text("3\n")
        return True
    except OSError:
        return False


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
