"""UNet on a time-pooled input (the float16 UNet notebook recipe), any smp or timm encoder.

Time axis average-pooled by `time_pool` (14: 1000 -> 71 rows, cropped to 70), padded to the
encoder's multiple, smp.Unet, cropped back to 70 x 70.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
import torch.nn as nn
import torch.nn.functional as F

from kagglekit.fwi.models.common import bound_velocity, ceil_to, transform_seismic
from kagglekit.registry import MODELS


@MODELS.register("unet")
class TimePooledUnet(nn.Module):
    def __init__(
        self,
        encoder: str = "resnet34",
        encoder_depth: int = 5,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        time_pool: int = 14,
        attention: str | None = None,
        input_transform: str = "log1p",
    ):
        super().__init__()
        self.time_pool = time_pool
        self.input_transform = input_transform
        self.size = ceil_to(70, 2**encoder_depth)
        self.net = smp.Unet(
            encoder_name=encoder,
            encoder_weights=None,
            encoder_depth=encoder_depth,
            decoder_channels=list(decoder_channels),
            decoder_attention_type=attention,
            in_channels=5,
            classes=1,
        )

        # smp keeps the ResNet stages beyond encoder_depth although it never runs them: drop them
        # (unused parameters would stall DDP and waste optimizer state)
        for k in range(encoder_depth, 5):
            if hasattr(self.net.encoder, f"layer{k}"):
                delattr(self.net.encoder, f"layer{k}")

    def backbone_module(self) -> nn.Module:
        """Where timm/smp backbone weights go (`pretrained`)."""
        return self.net.encoder

    def forward(self, seismic: torch.Tensor) -> torch.Tensor:
        x = transform_seismic(seismic, self.input_transform)  # (B, 5, 1000, 70)
        x = F.avg_pool2d(x, (self.time_pool, 1), ceil_mode=True)[:, :, :70]  # (B, 5, 70, 70)
        pad = self.size - 70
        x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2), mode="replicate")  # (B, 5, S, S)
        y = self.net(x)[:, 0, pad // 2 : pad // 2 + 70, pad // 2 : pad // 2 + 70]  # (B, 70, 70)
        return bound_velocity(y)
