"""Time and peak memory to write the full-size submission CSV (65,818 ids, 4,607,260 rows),
ours vs pandas.DataFrame.to_csv of the same table, each in its own process.

    .venv/bin/python benchmarks/submission_write.py [--n 65818] [--skip-pandas]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from kagglekit.fwi.submission import ODD_COLUMNS, write_submission  # noqa: E402
from kagglekit.fwi.synthetic import write_sample_submission  # noqa: E402


def _predictions(n: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    ids = sorted({f"{v:010x}" for v in rng.integers(0, 16**10, n + 100)})[:n]
    pred = np.empty((n, 70, 70), dtype=np.float16)
    for start in range(0, n, 4096):  # chunked, so generating the input sets no memory high-water mark
        stop = min(n, start + 4096)
        pred[start:stop] = rng.uniform(1500, 4500, (stop - start, 70, 70)).astype(np.float16)
    return pred, ids


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(n, sample, out, queue):
    pred, ids = _predictions(n)
    base = _rss_mb()
    t0 = time.perf_counter()
    write_submission(pred, ids, sample, out)
    queue.put((time.perf_counter() - t0, _peak_mb() - base))


def run_pandas(n, sample, out, queue):
    import pandas as pd

    pred, ids = _predictions(n)
    base = _rss_mb()
    t0 = time.perf_counter()
    frame = pd.DataFrame(pred[:, :, ODD_COLUMNS].reshape(-1, 35).astype(np.float32), columns=[f"x_{x}" for x in ODD_COLUMNS])
    frame.insert(0, "oid_ypos", [f"{i}_y_{y}" for i in ids for y in range(70)])
    frame.to_csv(out, index=False, float_format="%.1f")
    queue.put((time.perf_counter() - t0, _peak_mb() - base))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=65818)
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    _, ids = _predictions(args.n)
    write_sample_submission(tmp / "sample_submission.csv", ids)
    results = {}
    writers = [("kagglekit write_submission", run_ours)] + ([] if args.skip_pandas else [("pandas to_csv", run_pandas)])
    for name, fn in writers:
        queue = mp.get_context("fork").Queue()
        proc = mp.get_context("fork").Process(target=fn, args=(args.n, tmp / "sample_submission.csv", tmp / f"{fn.__name__}.csv", queue))
        proc.start()
        seconds, peak_mb = queue.get()
        proc.join()
        results[name] = (seconds, peak_mb, (tmp / f"{fn.__name__}.csv").stat().st_size / 1e6)
    print(f"{args.n} ids, {args.n * 70} rows; peak = max RSS during the write minus RSS with the inputs in memory")
    print("| writer | seconds | peak extra memory (MB) | file (MB) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    slowest = max(r[0] for r in results.values())
    for name, (seconds, peak, size) in results.items():
        print(f"| {name} | {seconds:.1f} | {peak:.0f} | {size:.0f} | {slowest / seconds:.1f}x |")


if __name__ == "__main__":
    main()
