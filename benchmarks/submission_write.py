"""Whole `kagglekit fwi write-csv` (check + write + validate) at Kaggle size vs the pandas baseline, one run.

Inputs (generated into a temporary folder): N random fp16 velocity maps (N, 70, 70) as .npy, ids.txt
and a sample submission (kagglekit.fwi.synthetic.write_sample_submission), N * 70 rows x 36 columns.

Each pipeline runs in its own process; seconds are wall time around that process (interpreter
start and imports included), CPU is the child's user + system time, peak memory its max RSS
(os.wait4 rusage, that child alone):

- kagglekit: `<venv>/bin/kagglekit fwi write-csv PRED --sample-submission S --out FOLDER --name NAME`
  (ids.txt beside PRED)
- write_and_validate(): the same through the library call in a bare interpreter (the command minus CLI start-up)
- pandas: the same table through pandas.DataFrame.to_csv(float_format="%.1f"), then validated the
  previous way (pandas.read_csv + the pre-pyarrow checks, kept below as `pandas_validate`).

The machine's load average is printed before and after: a figure taken while other work was
running is contaminated (compare the CPU column, which is not).

    .venv/bin/python benchmarks/submission_write.py [--n 65818] [--skip-pandas]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kagglekit.fwi.constants import GRID, SCORED_COLUMNS, VMAX, VMIN


def make_inputs(n: int, folder: Path) -> dict[str, Path]:
    from kagglekit.fwi.synthetic import write_sample_submission

    paths = {"pred": folder / "pred.npy", "ids": folder / "ids.txt", "sample": folder / "sample_submission.csv"}
    rng = np.random.default_rng(0)
    ids = sorted({f"{v:010x}" for v in rng.integers(0, 16**10, n + 100)})[:n]
    pred = np.lib.format.open_memmap(paths["pred"], mode="w+", dtype=np.float16, shape=(n, GRID, GRID))
    for start in range(0, n, 4096):  # chunked: generating the input sets no memory high-water mark
        stop = min(n, start + 4096)
        pred[start:stop] = rng.uniform(VMIN, VMAX, (stop - start, GRID, GRID)).astype(np.float16)
    pred.flush()
    del pred
    paths["ids"].write_text("\n".join(ids) + "\n")
    write_sample_submission(paths["sample"], ids)
    return paths


def pandas_validate(csv: Path, sample_submission: Path, max_examples: int = 3) -> list[str]:
    """The validator as it was before pyarrow (pandas), compacted; returns the problems as text."""
    import pandas as pd

    problems = []
    expected_cols = pd.read_csv(sample_submission, nrows=0).columns.tolist()
    frame = pd.read_csv(csv, dtype={"oid_ypos": str}, engine="c")
    cols = frame.columns.tolist()
    if cols != expected_cols:
        problems.append(f"columns: {cols[:5]}...")
    oid = frame["oid_ypos"]
    dup = oid.duplicated(keep="first").to_numpy()
    if dup.any():
        problems.append(
            f"duplicates: {int(dup.sum())}, first at lines {[int(r) + 2 for r in np.flatnonzero(dup)[:max_examples]]}"
        )
    expected = pd.read_csv(sample_submission, usecols=["oid_ypos"], dtype=str)["oid_ypos"]
    exp_set, got_set = set(expected), set(oid)
    missing = [o for o in expected if o not in got_set][:max_examples]
    unknown = ~oid.isin(exp_set).to_numpy()
    if missing:
        problems.append(f"missing rows: {len(exp_set - got_set)}, e.g. {missing}")
    if unknown.any():
        problems.append(
            f"unknown rows: {int(unknown.sum())}, first at lines {[int(r) + 2 for r in np.flatnonzero(unknown)[:max_examples]]}"
        )
    value_cols = [c for c in cols if c != "oid_ypos"]
    values = frame[value_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    for kind, mask in (
        ("non-finite", ~np.isfinite(values)),
        ("outside 1500-4500", np.isfinite(values) & ((values < VMIN) | (values > VMAX))),
    ):
        rows = np.flatnonzero(mask.any(axis=1))
        if len(rows):
            problems.append(f"{kind}: {int(mask.sum())} cells in {len(rows)} rows; first at line {rows[0] + 2}")
    return problems


def pandas_pipeline(pred_path: str, ids_path: str, sample: str, out: str) -> None:
    """Child process of the baseline: write with pandas, validate the old way, print phase times."""
    import pandas as pd

    t0 = time.perf_counter()
    pred = np.load(pred_path, mmap_mode="r")
    ids = Path(ids_path).read_text().split()
    frame = pd.DataFrame(
        pred[:, :, SCORED_COLUMNS].reshape(-1, len(SCORED_COLUMNS)).astype(np.float32), columns=[f"x_{x}" for x in SCORED_COLUMNS]
    )
    frame.insert(0, "oid_ypos", [f"{i}_y_{y}" for i in ids for y in range(GRID)])
    frame.to_csv(out, index=False, float_format="%.1f")
    del frame
    t1 = time.perf_counter()
    problems = pandas_validate(Path(out), Path(sample))
    t2 = time.perf_counter()
    if problems:
        raise SystemExit("baseline output invalid: " + "; ".join(problems))
    print(json.dumps({"write_s": t1 - t0, "validate_s": t2 - t1}))


LIBRARY_CALL = """
import json, sys
from kagglekit.fwi.predictions import Predictions
from kagglekit.fwi.submission import write_and_validate
r = write_and_validate(Predictions.read(sys.argv[1]), *sys.argv[2:4])
print(json.dumps({k: r[k] for k in ("write_s", "validate_s")}))
"""


def run_child(cmd: list[str]) -> dict:
    """Run `cmd`; wall seconds around it, its CPU seconds and peak RSS (this child only, via wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stdout}\n{stderr}")
    return {"seconds": seconds, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024, "stdout": stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n", type=int, default=65818, help="number of ids (Kaggle test set: 65818 -> 4,607,260 rows)")
    parser.add_argument("--skip-pandas", action="store_true", help="time only the kagglekit command")
    parser.add_argument("--pandas-child", nargs=4, metavar=("PRED", "IDS", "SAMPLE", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--make-inputs-child", nargs=2, metavar=("N", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_inputs_child:
        make_inputs(int(args.make_inputs_child[0]), Path(args.make_inputs_child[1]))
        return
    if args.pandas_child:
        pandas_pipeline(*args.pandas_child)
        return

    kagglekit = Path(sys.executable).with_name("kagglekit")
    if not kagglekit.exists():
        kagglekit = Path(shutil.which("kagglekit") or "kagglekit")
    tmp = Path(tempfile.mkdtemp(prefix="submission_bench_"))
    try:
        t0 = time.perf_counter()
        # in a child, so that this process stays small: a child's peak RSS counts its parent's at fork
        subprocess.run([sys.executable, __file__, "--make-inputs-child", str(args.n), str(tmp)], check=True)
        inputs = {"pred": tmp / "pred.npy", "ids": tmp / "ids.txt", "sample": tmp / "sample_submission.csv"}
        print(
            f"inputs: {args.n} ids, {args.n * GRID:,} rows, generated in {time.perf_counter() - t0:.0f} s; cores: {os.cpu_count()}"
        )
        load_before = os.getloadavg()
        results = {}
        out = tmp / "kagglekit.csv"
        ours = run_child(
            [
                str(kagglekit),
                "fwi",
                "write-csv",
                str(inputs["pred"]),
                "--sample-submission",
                str(inputs["sample"]),
                "--out",
                str(out.parent),
                "--name",
                out.stem,
            ]
        )
        phases = re.search(r"in ([\d.]+) s; validated in ([\d.]+) s", ours["stdout"])  # the command's own report, if it says
        if phases:
            ours.update(write_s=float(phases[1]), validate_s=float(phases[2]))
        results["kagglekit fwi write-csv (range check + numpy write + pyarrow validate)"] = (ours, out.stat().st_size / 1e6)
        out.unlink()
        lib = run_child([sys.executable, "-c", LIBRARY_CALL, str(inputs["pred"]), str(inputs["sample"]), str(out)])
        lib.update(json.loads(lib["stdout"].strip().splitlines()[-1]))
        results["kagglekit.fwi.submission.write_and_validate() alone"] = (lib, out.stat().st_size / 1e6)
        out.unlink()
        if not args.skip_pandas:
            out = tmp / "pandas.csv"
            base = run_child(
                [
                    sys.executable,
                    __file__,
                    "--pandas-child",
                    str(inputs["pred"]),
                    str(inputs["ids"]),
                    str(inputs["sample"]),
                    str(out),
                ]
            )
            base.update(json.loads(base["stdout"].strip().splitlines()[-1]))
            results["pandas to_csv + pandas validation"] = (base, out.stat().st_size / 1e6)
            out.unlink()
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"kagglekit says: {ours['stdout'].strip()}")
    print()
    print("| pipeline | seconds | write s | validate s | CPU s | peak RSS (MB) | file (MB) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    slowest = max(r["seconds"] for r, _ in results.values())
    for name, (r, size) in results.items():
        phases = [f"{r[k]:.1f}" if k in r else "" for k in ("write_s", "validate_s")]
        print(
            f"| {name} | {r['seconds']:.1f} | {phases[0]} | {phases[1]} | {r['cpu_s']:.1f} | {r['peak_mb']:.0f} | {size:.0f} | {slowest / r['seconds']:.1f}x |"
        )


if __name__ == "__main__":
    main()
