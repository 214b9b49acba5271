"""InversionNet (OpenFWI baseline): conv encoder strided in time, deconv decoder.

Layer plan as in the OpenFWI paper, scaled by `width` (32 in the paper's first layer).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from kagglekit.fwi.models import MODELS
from kagglekit.fwi.models.base import VelocityModel


def conv_block(cin, cout, kernel=(3, 3), stride=(1, 1), padding=(1, 1)):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


def deconv_block(cin, cout, kernel=2, stride=2, padding=0):
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)
    )


@MODELS.register("inversionnet")
class InversionNet(VelocityModel):
    def __init__(self, width: int = 32, input_transform: str = "log1p"):
        super().__init__(input_transform)
        w = width
        self.encoder = nn.Sequential(
            conv_block(5, w, (7, 1), (2, 1), (3, 0)),  # 1000 -> 500 in time
            conv_block(w, 2 * w, (3, 1), (2, 1), (1, 0)),  # -> 250
            conv_block(2 * w, 2 * w, (3, 1), (1, 1), (1, 0)),
            conv_block(2 * w, 2 * w, (3, 1), (2, 1), (1, 0)),  # -> 125
            conv_block(2 * w, 2 * w, (3, 1), (1, 1), (1, 0)),
            conv_block(2 * w, 4 * w, (3, 1), (2, 1), (1, 0)),  # -> 63
            conv_block(4 * w, 4 * w, (3, 1), (1, 1), (1, 0)),
            conv_block(4 * w, 4 * w, stride=(2, 2)),  # -> 32 x 35
            conv_block(4 * w, 4 * w),
            conv_block(4 * w, 8 * w, stride=(2, 2)),  # -> 16 x 18
            conv_block(8 * w, 8 * w),
            conv_block(8 * w, 8 * w, stride=(2, 2)),  # -> 8 x 9
            conv_block(8 * w, 8 * w),
            conv_block(8 * w, 16 * w, kernel=(8, 9), padding=(0, 0)),  # -> 1 x 1
        )
        self.decoder = nn.Sequential(
            deconv_block(16 * w, 16 * w, kernel=5, stride=1),  # 1 -> 5
            conv_block(16 * w, 16 * w),
            deconv_block(16 * w, 8 * w, kernel=4, stride=2, padding=1),  # -> 10
            conv_block(8 * w, 8 * w),
            deconv_block(8 * w, 4 * w, kernel=4, stride=2, padding=1),  # -> 20
            conv_block(4 * w, 4 * w),
            deconv_block(4 * w, 2 * w, kernel=4, stride=2, padding=1),  # -> 40
            conv_block(2 * w, 2 * w),
            deconv_block(2 * w, w, kernel=4, stride=2, padding=1),  # -> 80
            conv_block(w, w),
        )
        self.head = nn.Conv2d(w, 1, 3, padding=1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.decoder(self.encoder(x))  # (B, 5, 1000, 70) -> (B, 16w, 1, 1) -> (B, w, 80, 80)
        x = F.pad(x, (-5, -5, -5, -5))  # (B, w, 70, 70)
        return self.head(x)[:, 0]  # (B, 70, 70)
