"""How near is the velocity x a <=> time x 1/a augmentation to simulating the scaled map?

Relative L2 of time_scale(simulate(v), a) against simulate(a v), next to that of the unscaled
record simulate(v), for two families and a in {0.9, 1.1, 1.2}:
    .venv/bin/python benchmarks/time_scale_accuracy.py
"""

from __future__ import annotations

import torch

from kagglekit.fwi.data.timescale import time_scale
from kagglekit.fwi.physics import generate_family, simulate
from kagglekit.report import markdown_table


def relative_l2(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float((x - reference).norm() / reference.norm())


def main() -> None:
    rows = []
    for family in ("FlatVel_A", "CurveFault_B"):
        v = torch.from_numpy(generate_family(family, 1, seed=4))[0].clamp(max=3700)  # (70, 70), room for a = 1.2
        record = simulate(v[None])[0]  # (5, 1000, 70)
        for a in (0.9, 1.1, 1.2):
            truth = simulate((v * a)[None])[0]
            scaled, _ = time_scale(record, v, a)
            rows.append((family, a, f"{relative_l2(scaled, truth):.3f}", f"{relative_l2(record, truth):.3f}"))
    print(markdown_table(["family", "a", "time-scaled record vs simulate(a v)", "unscaled record vs simulate(a v)"], rows))


if __name__ == "__main__":
    main()
