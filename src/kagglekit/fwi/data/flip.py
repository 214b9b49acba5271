"""Horizontal flip shared by training augmentation and TTA.

Mirroring x maps receiver r to 69 - r and source column c to 69 - c, so the source order is
reversed (0,17,34,52,69 -> 69,52,35,17,0). The middle source lands on column 35, not 34: the
flip is approximately physical only for that shot (exact for the other four).
"""

from __future__ import annotations

import torch


def flip_seismic(seismic: torch.Tensor) -> torch.Tensor:
    """(..., 5, T, 70) -> same shape: receivers mirrored, source order reversed."""
    return seismic.flip(-1).flip(-3)


def flip_velocity(velocity: torch.Tensor) -> torch.Tensor:
    """(..., 70, 70) -> same shape, mirrored in x."""
    return velocity.flip(-1)
