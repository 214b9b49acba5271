"""Forward-modelling throughput.

--section simulators: deepwave batched vs one model at a time vs the exact OpenFWI scheme
(`simulate(..., backend="openfwi")`, float32 and float64), plus deepwave forward+backward (what
refinement and the physics term pay) at pml_width 20 and 10. Target on the 2-core CPU machine:
>= 10 models/s batched (5 shots, 1000 steps each).

--section jobs: maps/s of the whole `kagglekit fwi simulate` command (start-up included) run as
- one in-process worker with deepwave's and torch's default threads (`--workers 1`, the old way),
- one single-threaded worker per core (the default, kagglekit.parallel),
- two such commands at once (their combined maps/s against one alone),
- on a GPU, one worker per GPU (`--device cuda`).
Targets on the 2-core CPU: workers per core >= 1.5x the in-process call; two at once >= 0.8x one.

    .venv/bin/python benchmarks/simulate_throughput.py --section jobs [--per-file 10 --n-test 40]
    .venv/bin/python benchmarks/simulate_throughput.py --section simulators [--models 64] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kagglekit.fwi.constants import FAMILIES
from kagglekit.fwi.physics import generate_family, simulate


def _simulate_command(out: Path, args, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "kagglekit.cli", "fwi", "simulate", str(out),
        "--per-file", str(args.per_file), "--n-test", str(args.n_test), *extra,
    ]  # fmt: skip


def _timed_commands(commands: list[list[str]], env: dict) -> float:
    """Wall seconds until every command (started together) has finished."""
    t0 = time.perf_counter()
    running = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    for proc in running:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(proc.args)} failed:\n{err}")
    return time.perf_counter() - t0


def jobs(args) -> None:
    n_maps = 20 * args.per_file + args.n_test
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the libraries' defaults
    work = Path(tempfile.mkdtemp(prefix="simulate_throughput_"))
    cases = [  # (name, commands started together, maps they make)
        ("in-process call, default threads (--workers 1)", [["--device", "cpu", "--workers", "1"]], n_maps),
        ("one single-threaded worker per core (default)", [["--device", "cpu"]], n_maps),
        ("two commands at once, combined", [["--device", "cpu"], ["--device", "cpu"]], 2 * n_maps),
    ]
    if torch.cuda.is_available():
        cases.append((f"one worker per GPU ({torch.cuda.device_count()} GPUs)", [["--device", "cuda"]], n_maps))
    rows = []
    try:
        for k, (name, options, maps) in enumerate(cases):
            commands = [_simulate_command(work / f"case{k}_{j}", args, *extra) for j, extra in enumerate(options)]
            rows.append((name, maps / _timed_commands(commands, env)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {n_maps} maps per command")
    print("| fwi simulate | maps/s | vs in-process |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} | {rate / rows[0][1]:.2f}x |")
    print(f"two at once / one alone: {rows[2][1] / rows[1][1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=["simulators", "jobs"], default="simulators")
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reference", type=int, default=2, help="models for the (slow) OpenFWI backend")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--per-file", type=int, default=10, help="jobs: maps per training file (20 files)")
    parser.add_argument("--n-test", type=int, default=40, help="jobs: test maps")
    args = parser.parse_args()
    if args.section == "jobs":
        jobs(args)
        return
    device = torch.device(args.device)
    per_family = -(-args.models // len(FAMILIES))
    v = np.concatenate([generate_family(f, per_family, i) for i, f in enumerate(FAMILIES)])[: args.models]
    v_t = torch.from_numpy(v).to(device)
    simulate(v_t[:2])  # warm-up

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.no_grad():
        t_batched = timed(lambda: [simulate(v_t[i : i + args.batch]) for i in range(0, len(v_t), args.batch)])
        n_single = min(len(v_t), 16)
        t_single = timed(lambda: [simulate(v_t[i : i + 1]) for i in range(n_single)])
        ref = v_t[: args.reference]
        t_ref32 = timed(lambda: simulate(ref, backend="openfwi"))
        t_ref64 = timed(lambda: simulate(ref, backend="openfwi", dtype=torch.float64))

    def forward_backward(pml: int) -> float:
        x = v_t[:8].clone().requires_grad_(True)
        return 8 / timed(lambda: simulate(x, nt=999, pml_width=pml).square().mean().backward())

    rows = [
        ("deepwave, batched", len(v_t) / t_batched),
        ("deepwave, one model per call", n_single / t_single),
        ("deepwave forward+backward, 8 per call, pml 20", forward_backward(20)),
        ("deepwave forward+backward, 8 per call, pml 10 (refine, physics term)", forward_backward(10)),
        ("OpenFWI scheme (backend='openfwi'), float32, batched", args.reference / t_ref32),
        ("OpenFWI scheme (backend='openfwi'), float64, batched", args.reference / t_ref64),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, device {device}")
    print("| simulator | models/s | vs openfwi float64 |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} | {rate / rows[-1][1]:.1f}x |")
    print(f"batched / one-at-a-time: {rows[0][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
