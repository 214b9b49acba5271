"""Per-sample read throughput: float16 memmap (our converted format) vs np.load of float32 files.

    .venv/bin/python benchmarks/memmap_read.py [--samples 400] [--dir /tmp/kk_bench_read]

Each reads a random permutation of the samples into a (5, 1000, 70) tensor: the memmap as
FWITrainDataset does (fp16 sample; the engine casts to fp32 on the device), optionally cast to
fp32 on the CPU, and the float32 files with np.load. Measured with a warm page cache and, where
/proc/sys/vm/drop_caches is writable (root), cold. Target: memmap >= 2x faster per sample.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from kagglekit.fwi.data.datasets import _RowFile  # noqa: E402

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--dir", default="/tmp/kk_bench_read")
    parser.add_argument("--repeats", type=int, default=3)
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

    def read_ours():  # as FWITrainDataset: pread of the fp16 row; cast to fp32 later on the device
        folder = _RowFile(root / "seismic.npy", (5, 1000, 70), np.dtype(np.float16))
        for i in order:
            folder.read(int(i))

    def read_ours_fp32():  # the same, cast to fp32 on the CPU
        folder = _RowFile(root / "seismic.npy", (5, 1000, 70), np.dtype(np.float16))
        for i in order:
            folder.read(int(i)).float()

    def read_np_memmap():  # slicing an np.memmap (page faults per 4 KB page)
        arr = np.load(root / "seismic.npy", mmap_mode="r")
        for i in order:
            torch.from_numpy(np.array(arr[i]))

    def read_files():
        for i in order:
            torch.from_numpy(np.load(root / "files" / f"{i:06d}.npy"))

    can_drop = _drop_caches()
    modes = [("warm page cache", False)] + ([("cold (page cache dropped)", True)] if can_drop else [])
    print(f"{args.samples} samples of (5, 1000, 70), random order, best of {args.repeats}")
    print("| cache | format | samples/s | ratio |")
    print("|---|---|---:|---:|")
    for label, cold in modes:
        results = {}
        for name, fn in (
            ("float16 memmap file, pread (ours)", read_ours),
            ("float16 memmap file, pread + float32 cast on CPU", read_ours_fp32),
            ("float16 np.memmap slice", read_np_memmap),
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
        base = results["float32 file per sample (np.load)"]
        for name, rate in results.items():
            print(f"| {label} | {name} | {rate:.0f} | {rate / base:.2f}x |")
    if not can_drop:
        print("(cold-cache rows need root to write /proc/sys/vm/drop_caches)")
    shutil.rmtree(root)


def _drop_caches() -> bool:
    try:
        import os

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
