"""Forward-modelling throughput: deepwave batched vs one model at a time vs the exact OpenFWI
scheme (`simulate(..., backend="openfwi")`, float32 and float64), plus deepwave forward+backward
(what refinement and the physics term pay) at pml_width 20 and 10.

    .venv/bin/python benchmarks/simulate_throughput.py [--models 64] [--batch 32] [--reference 2]

Target on the 2-core CPU machine: >= 10 models/s batched (5 shots, 1000 steps each).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from kagglekit.fwi.constants import FAMILIES
from kagglekit.fwi.physics import generate_family, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reference", type=int, default=2, help="models for the (slow) OpenFWI backend")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
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
