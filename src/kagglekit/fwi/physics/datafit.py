"""The data term of refinement under one of three operators, per map (B,):
- "deepwave": deepwave alone (fast; ~1e-3 relative L2 from the OpenFWI scheme, a misfit floor ~1e-6);
- "corrected": deepwave plus the fixed defect `exact(v_k) - deepwave(v_k)` at a map v_k that
  `refresh` moves to the current one (docs/reference/physics-facts.md section 7): every gradient is deepwave's, and at
  a fixed point v = v_k the exact scheme fits the data;
- "openfwi": the exact scheme with its adjoint (physics/exact.py), ~15x deepwave's cost.
The misfit is relative: mean squared residual over the first `n_time` samples / mean observed power.
"""

from __future__ import annotations

import torch

from kagglekit.fwi.physics.exact import simulate_exact
from kagglekit.fwi.physics.misfit import MISFIT_TIME
from kagglekit.fwi.physics.simulate import FAST_PML_WIDTH, simulate

OPERATORS = ("deepwave", "corrected", "openfwi")


class DataFit:
    def __init__(
        self,
        observed: torch.Tensor,
        operator: str = "corrected",
        *,
        n_time: int = MISFIT_TIME,
        pml_width: int = FAST_PML_WIDTH,
        dtype: torch.dtype = torch.float32,
        time_weight: torch.Tensor | None = None,
    ):
        """observed (B, 5, >= n_time, 70); time_weight (n_time,) scales each time sample's residual.
        `dtype` is the simulation's precision (settable between calls); residuals are float64."""
        if operator not in OPERATORS:
            raise ValueError(f"unknown operator '{operator}'; valid: {', '.join(OPERATORS)}")
        self.operator, self.n_time, self.pml_width, self.dtype = operator, n_time, pml_width, dtype
        self.observed = observed[:, :, :n_time].double()  # (B, 5, T, 70)
        self.weight = None if time_weight is None else time_weight.to(self.observed).view(1, 1, n_time, 1)
        self.power = self._weighted(self.observed).square().mean(dim=(1, 2, 3))  # (B,)
        self.defect = torch.zeros_like(self.observed) if operator == "corrected" else None
        self.refreshes = 0

    def _weighted(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.weight is None else x * self.weight

    def simulate(self, v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(b, 70, 70) -> (b, 5, T, 70) the operator's records of maps `rows`, differentiable."""
        v = v.to(self.dtype)
        if self.operator == "openfwi":
            return simulate_exact(v, self.n_time, dtype=self.dtype).double()
        data = simulate(v, self.n_time, dtype=self.dtype, pml_width=self.pml_width).double()
        return data if self.defect is None else data + self.defect[rows]

    def misfit(self, v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(b, 70, 70) m/s -> (b,) relative misfit, differentiable."""
        residual = self._weighted(self.simulate(v, rows) - self.observed[rows])
        return residual.square().mean(dim=(1, 2, 3)) / self.power[rows]

    @torch.no_grad()
    def refresh(self, v: torch.Tensor, rows: torch.Tensor) -> None:
        """Move the defect of maps `rows` to v (b, 70, 70): one exact and one deepwave forward."""
        if self.defect is None:
            return
        v = v.to(self.dtype)
        exact = simulate_exact(v, self.n_time, dtype=self.dtype).double()
        self.defect[rows] = exact - simulate(v, self.n_time, dtype=self.dtype, pml_width=self.pml_width).double()
        self.refreshes += 1

    @torch.no_grad()
    def exact_misfit(self, v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(b,) relative misfit under the exact scheme (what the data were made with, if released)."""
        residual = self._weighted(simulate_exact(v.to(self.dtype), self.n_time, dtype=self.dtype).double() - self.observed[rows])
        return residual.square().mean(dim=(1, 2, 3)) / self.power[rows]
