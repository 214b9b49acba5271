"""HGNet-V2 UNet (brendanartley's recipe): input area-resized to 70 x 70, replicate-padded to
72 x 72, timm `hgnetv2_*` features with stem stride 1, smp UNet decoder, crop [1:-1]."""

from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from kagglekit.fwi.models import MODELS
from kagglekit.fwi.models.base import VelocityModel
from kagglekit.fwi.models.common import unet_decoder


@MODELS.register("hgnet")
class HGNetUnet(VelocityModel):
    backbone_name = "backbone"

    def __init__(
        self,
        backbone: str = "hgnetv2_b2",
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32),
        attention: str | None = None,
        input_transform: str = "log1p",
    ):
        super().__init__(input_transform)
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, in_chans=5)
        self.backbone.stem.stem1.conv.stride = (1, 1)  # keep resolution: strides become 2/4/8/16
        channels = self.backbone.feature_info.channels()
        self.decoder = unet_decoder([5, *channels], list(decoder_channels), attention)
        self.head = nn.Conv2d(decoder_channels[-1], 1, 3, padding=1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(70, 70), mode="area")  # (B, 5, 1000, 70) -> (B, 5, 70, 70)
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")  # (B, 5, 72, 72)
        features = self.backbone(x)  # 36, 18, 9, 5
        y = self.head(self.decoder([x, *features]))  # (B, 1, 72, 72)
        return y[:, 0, 1:-1, 1:-1]  # (B, 70, 70)
