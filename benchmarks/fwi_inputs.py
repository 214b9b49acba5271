"""What the model input layers do to the embedded default's seismic, and what they cost.

    .venv/bin/python benchmarks/fwi_inputs.py [--samples 50] [--batch 16] [--repeats 5]

1. Amplitude by arrival time: p90 of |x| per 200 ms window, raw and after each input transform
   (`log1p`, `gain_log1p`), over the first SAMPLES training samples.
2. The constant-velocity migration layer (3 velocities): our sparse operator vs a direct gather
   of the same diffraction samples (the baseline), same batch, same run; outputs compared.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from kagglekit.fwi.models.common import transform_seismic
from kagglekit.fwi.models.migration import ConstantVelocityMigration, diffraction_sample_index

ROOT = Path(__file__).resolve().parents[1]

VELOCITIES = (2000.0, 3000.0, 4000.0)


def gather_migration(x: torch.Tensor) -> torch.Tensor:
    """Baseline: (B, 5, T, 70) -> (B, 15, 70, 70) by indexing every diffraction sample."""
    shots = torch.arange(5).view(5, 1, 1, 1)
    receivers = torch.arange(70).view(1, 1, 1, 70)
    images = []
    for v in VELOCITIES:
        sample, inside = diffraction_sample_index(v)  # (5, z, x, r)
        picked = x[:, shots, sample, receivers]  # (B, 5, z, x, r)
        images.append((picked * inside).sum(-1) / inside.sum(-1).clamp(min=1))
    return torch.cat(images, dim=1)


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (builds the sparse operator once)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "data/synthetic/converted/seismic.npy"))
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not Path(args.data).is_file():
        raise SystemExit(f"{args.data}: not found; build it with `bash scripts/make_synthetic.sh`")
    seismic = np.load(args.data, mmap_mode="r")
    x = torch.from_numpy(np.asarray(seismic[: args.samples], dtype=np.float32))  # (N, 5, 1000, 70)
    print(f"{platform.machine()} CPU, {torch.get_num_threads()} threads; {len(x)} samples of {args.data}")

    print("\np90 of |x| per 200 ms window:")
    print("| input | " + " | ".join(f"{t}-{t + 200} ms" for t in range(0, 1000, 200)) + " |")
    print("|---|" + "---:|" * 5)
    for kind in ("none", "log1p", "gain_log1p"):
        y = transform_seismic(x, kind).abs()
        cells = [np.percentile(y[:, :, t : t + 200].numpy(), 90) for t in range(0, 1000, 200)]
        print(f"| {'raw' if kind == 'none' else kind} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")

    batch = transform_seismic(x[: args.batch], "log1p")
    layer = ConstantVelocityMigration(VELOCITIES)
    sparse_out, gather_out = layer(batch), gather_migration(batch)
    diff = float((sparse_out - gather_out).abs().max())
    t_sparse = best_time(lambda: layer(batch), args.repeats)
    t_gather = best_time(lambda: gather_migration(batch), args.repeats)
    print(f"\nmigration of a batch of {len(batch)} at {len(VELOCITIES)} velocities (best of {args.repeats}):")
    print("| implementation | ms | speed-up |")
    print("|---|---:|---:|")
    print(f"| direct gather (baseline) | {t_gather * 1e3:.1f} | 1.0x |")
    print(f"| sparse CSR operator (ConstantVelocityMigration) | {t_sparse * 1e3:.1f} | {t_gather / t_sparse:.1f}x |")
    print(f"max |difference| {diff:.2e} (outputs up to {float(gather_out.abs().max()):.2f})")


if __name__ == "__main__":
    main()
