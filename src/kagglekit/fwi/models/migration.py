"""Constant-velocity Kirchhoff depth migration: a fixed (not learned) input layer.

A network reading raw shot gathers must learn where in the (depth, x) map each arrival comes
from, and that mapping depends on the velocity it is trying to predict. Migrating each shot with a
few constant reference velocities does the geometry up front: image point (z, x) of shot s sums,
over receivers r, the sample at the two-way diffraction time

    t = (|p - source_s| + |p - receiver_r|) / v_ref + wavelet delay.

Where v_ref is close to the true velocity above a reflector, the reflector appears at its depth
and the five shot images agree; elsewhere it is misplaced and they disagree, which is what a
velocity analysis looks for. The result is aligned with the velocity map, pixel for pixel, so
the UNet's skip connections carry it straight to the output.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from kagglekit.fwi.constants import (
    DT,
    DX,
    GRID,
    N_RECEIVERS,
    N_TIME,
    RECEIVER_DEPTH_ROW,
    RECORDED_PEAK_SAMPLE,
    SOURCE_COLUMNS,
    SOURCE_DEPTH_ROW,
)


def diffraction_sample_index(v_ref: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(5, 70 z, 70 x, 70 r) time-sample indices and a bool mask of those inside the record."""
    rows = torch.arange(GRID, dtype=torch.float64).view(GRID, 1, 1) * DX  # (z, 1, 1) m
    cols = torch.arange(GRID, dtype=torch.float64).view(1, GRID, 1) * DX  # (1, x, 1) m
    receivers = torch.arange(N_RECEIVERS, dtype=torch.float64).view(1, 1, N_RECEIVERS) * DX  # (1, 1, r) m
    to_receiver = torch.sqrt((rows - RECEIVER_DEPTH_ROW * DX) ** 2 + (cols - receivers) ** 2)  # (z, x, r) m
    samples = []
    for source in SOURCE_COLUMNS:
        from_source = torch.sqrt((rows - SOURCE_DEPTH_ROW * DX) ** 2 + (cols - source * DX) ** 2)  # (z, x, 1)
        samples.append(torch.round((from_source + to_receiver) / v_ref / DT).long() + RECORDED_PEAK_SAMPLE)
    sample = torch.stack(samples)  # (5, z, x, r)
    return sample.clamp(max=N_TIME - 1), sample < N_TIME


def migration_matrices(velocities: tuple[float, ...]) -> list[torch.Tensor]:
    """Per shot, a sparse CSR (K * 70 * 70, 1000 * 70) matrix: row (k, z, x) averages the samples
    of the 70 receivers at their diffraction times for v_ref = velocities[k]."""
    per_velocity = [diffraction_sample_index(v) for v in velocities]
    matrices = []
    for s in range(len(SOURCE_COLUMNS)):
        rows, cols, values = [], [], []
        for k, (sample, inside) in enumerate(per_velocity):
            count = inside[s].sum(-1, keepdim=True).clamp(min=1)  # (z, x, 1) receivers inside the record
            image_row = k * GRID * GRID + torch.arange(GRID * GRID).view(GRID, GRID, 1).expand_as(sample[s])
            column = sample[s] * N_RECEIVERS + torch.arange(N_RECEIVERS).view(1, 1, -1)  # into (T, R) flattened
            rows.append(image_row[inside[s]])
            cols.append(column[inside[s]])
            values.append((1.0 / count).expand_as(sample[s])[inside[s]])
        coo = torch.sparse_coo_tensor(
            torch.stack([torch.cat(rows), torch.cat(cols)]),
            torch.cat(values).float(),
            (len(velocities) * GRID * GRID, N_TIME * N_RECEIVERS),
            check_invariants=True,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            matrices.append(coo.coalesce().to_sparse_csr())
    return matrices


_OPERATORS: dict[tuple[tuple[float, ...], str], list[torch.Tensor]] = {}


class ConstantVelocityMigration(nn.Module):
    """(B, 5, 1000, 70) gathers -> (B, 5 * K, 70, 70) per-shot images at K reference velocities.

    The operator is a fixed sparse matrix per shot (70 non-zeros per image pixel and velocity),
    built from the geometry once per (velocities, device) and shared by every copy of the module
    (EMA, DDP): checkpoints and buffer broadcasts never see it.
    """

    def __init__(self, velocities: tuple[float, ...] = (2000.0, 3000.0, 4000.0)):
        super().__init__()
        if not velocities or min(velocities) <= 0:
            raise ValueError(f"migration velocities must be positive m/s values, got {velocities}")
        self.velocities = tuple(float(v) for v in velocities)

    def matrices(self, device: torch.device) -> list[torch.Tensor]:
        key = (self.velocities, str(device))
        if key not in _OPERATORS:
            _OPERATORS[key] = [m.to(device) for m in migration_matrices(self.velocities)]
        return _OPERATORS[key]

    @torch.no_grad()
    def forward(self, gathers: torch.Tensor) -> torch.Tensor:
        b, n_shots = gathers.shape[:2]
        k = len(self.velocities)
        with torch.autocast(gathers.device.type, enabled=False):  # sparse kernels want float32
            flat = gathers.float().reshape(b, n_shots, -1)  # (B, 5, T*R)
            images = [m @ flat[:, s].T for s, m in enumerate(self.matrices(gathers.device))]  # 5 x (K*z*x, B)
        stacked = torch.stack(images).view(n_shots, k, GRID, GRID, b)  # (5, K, z, x, B)
        return stacked.permute(4, 1, 0, 2, 3).reshape(b, k * n_shots, GRID, GRID)  # (B, K*5, 70, 70) velocity-major
