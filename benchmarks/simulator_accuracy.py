"""How close deepwave is to the OpenFWI scheme, and how large the scheme's late border leak is.

    .venv/bin/python benchmarks/simulator_accuracy.py

1. A faulted map (CurveFault_A, seed 0): relative L2 of deepwave (PML 20 and 10 cells) against the
   OpenFWI scheme as released (float64), over the whole record.
2. A slow top (1500 m/s, 15 rows) over a 4500 m/s half-space: the released scheme vs the same
   scheme with a widened, non-wrapping border (no leak), before and after 600 ms, and deepwave
   against both after 600 ms.
"""

from __future__ import annotations

import torch

from kagglekit.fwi.physics import generate_family, simulate
from kagglekit.fwi.physics.openfwi import simulate_openfwi


def rel(a: torch.Tensor, b: torch.Tensor, t0: int = 0, t1: int = 1000) -> float:
    return float((a[..., t0:t1, :] - b[..., t0:t1, :]).norm() / b[..., t0:t1, :].norm())


def main() -> None:
    faulted = torch.as_tensor(generate_family("CurveFault_A", 1, 0))
    exact = simulate(faulted, backend="openfwi", dtype=torch.float64)
    print("| faulted map | relative L2 vs OpenFWI scheme (released border) |")
    print("|---|---:|")
    for pml in (20, 10):
        print(f"| deepwave, PML {pml} cells | {rel(simulate(faulted, pml_width=pml).double(), exact):.2e} |")

    v = torch.full((1, 70, 70), 1500.0)
    v[:, 15:] = 4500.0
    leaky = simulate(v, backend="openfwi", dtype=torch.float64)
    clean = simulate_openfwi(v, dtype=torch.float64, extra=120, periodic=False)
    deep = simulate(v).double()
    print("\n| slow top over 4500 m/s | 0-600 ms | 600-1000 ms |")
    print("|---|---:|---:|")
    print(f"| released vs leak-free scheme (the leak) | {rel(leaky, clean, 0, 600):.2e} | {rel(leaky, clean, 600, 1000):.3f} |")
    print(f"| deepwave vs released scheme | {rel(deep, leaky, 0, 600):.2e} | {rel(deep, leaky, 600, 1000):.3f} |")
    print(f"| deepwave vs leak-free scheme | {rel(deep, clean, 0, 600):.2e} | {rel(deep, clean, 600, 1000):.3f} |")


if __name__ == "__main__":
    main()
