"""UNet on a time-pooled input (the float16 UNet notebook recipe), any smp or timm encoder.

Time axis average-pooled by `time_pool` (14: 1000 -> 71 rows, cropped to 70), padded to the
encoder's multiple, smp.Unet, cropped back to 70 x 70. Optional input extras:
- `time_stem`: channels of a learned time filter run at 2 ms before the pooling (the plain
  average keeps only the low band of a 15 Hz wavelet sampled at 1 ms);
- `coord_channels`: row (time) and column (receiver) coordinates, so the encoder knows where the
  five fixed sources sit (convolutions alone are blind to absolute position);
- `midpoint_channels`: each shot gather re-binned by source-receiver midpoint (the column under
  which a flat reflector's reflection point lies), so lateral structure lines up across shots
  and with the velocity map's columns;
- `migration_velocities`: per-shot constant-velocity depth migrations (see migration.py), images
  already in the velocity map's (depth, x) frame.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn
import torch.nn.functional as F

from kagglekit.fwi.constants import N_RECEIVERS, SOURCE_COLUMNS
from kagglekit.fwi.models import MODELS
from kagglekit.fwi.models.base import VelocityModel
from kagglekit.fwi.models.common import ceil_to, coordinate_grid
from kagglekit.fwi.models.migration import ConstantVelocityMigration


@MODELS.register("unet")
class TimePooledUnet(VelocityModel):
    backbone_name = "net.encoder"

    def __init__(
        self,
        encoder: str = "resnet34",
        encoder_depth: int = 5,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        time_pool: int = 14,
        attention: str | None = None,
        input_transform: str = "log1p",
        time_stem: int = 0,
        coord_channels: bool = False,
        midpoint_channels: bool = False,
        migration_velocities: tuple[float, ...] | None = None,
    ):
        super().__init__(input_transform)
        if time_pool % 2 and time_stem:
            raise ValueError(f"time_stem needs an even time_pool (the stem runs at 2x pooling), got {time_pool}")
        self.time_pool = time_pool
        self.coord_channels = coord_channels
        self.size = ceil_to(70, 2**encoder_depth)
        self.stem = None
        if time_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(5, time_stem, (7, 3), padding=(3, 1), bias=False),
                nn.BatchNorm2d(time_stem),
                nn.ReLU(inplace=True),
            )
        self.register_buffer("midpoint_bins", midpoint_binning() if midpoint_channels else None, persistent=False)
        self.migration = ConstantVelocityMigration(tuple(migration_velocities)) if migration_velocities else None
        n_migrated = 5 * len(migration_velocities) if migration_velocities else 0
        in_channels = 5 + time_stem + (5 if midpoint_channels else 0) + n_migrated + (2 if coord_channels else 0)
        self.net = smp.Unet(
            encoder_name=encoder,
            encoder_weights=None,
            encoder_depth=encoder_depth,
            decoder_channels=list(decoder_channels),
            decoder_attention_type=attention,
            in_channels=in_channels,
            classes=1,
        )

        # smp keeps the ResNet stages beyond encoder_depth although it never runs them: drop them
        # (unused parameters would stall DDP and waste optimizer state)
        for k in range(encoder_depth, 5):
            if hasattr(self.net.encoder, f"layer{k}"):
                delattr(self.net.encoder, f"layer{k}")

    def body(self, x: torch.Tensor) -> torch.Tensor:
        migrated = self.migration(x) if self.migration is not None else None  # (B, 5K, 70, 70)
        if self.stem is None:
            x = F.avg_pool2d(x, (self.time_pool, 1), ceil_mode=True)[:, :, :70]  # (B, 5, 70, 70)
        else:
            x = F.avg_pool2d(x, (2, 1))  # (B, 5, 500, 70)
            x = torch.cat([x, self.stem(x)], dim=1)  # (B, 5 + S, 500, 70)
            x = F.avg_pool2d(x, (self.time_pool // 2, 1), ceil_mode=True)[:, :, :70]  # (B, 5 + S, 70, 70)
        if self.midpoint_bins is not None:
            midpoint = torch.einsum("bstr,src->bstc", x[:, :5], self.midpoint_bins.to(x.dtype))  # (B, 5, 70, 70)
            x = torch.cat([x, midpoint], dim=1)
        if migrated is not None:
            x = torch.cat([x, migrated], dim=1)
        if self.coord_channels:
            x = torch.cat([x, coordinate_grid(x)], dim=1)  # (B, C + 2, 70, 70)
        pad = self.size - 70
        x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2), mode="replicate")  # (B, C, S, S)
        return self.net(x)[:, 0, pad // 2 : pad // 2 + 70, pad // 2 : pad // 2 + 70]  # (B, 70, 70)


def midpoint_binning() -> torch.Tensor:
    """(5, 70, 70) averaging weights: receiver r of shot s goes to column floor((r + x_s) / 2)."""
    weights = torch.zeros(len(SOURCE_COLUMNS), N_RECEIVERS, N_RECEIVERS)
    receivers = torch.arange(N_RECEIVERS)
    for s, source in enumerate(SOURCE_COLUMNS):
        weights[s, receivers, (receivers + source) // 2] = 1.0
    return weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)  # mean of the 1-2 traces per column
