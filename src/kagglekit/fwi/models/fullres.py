"""Full-resolution timm backbones (ConvNeXt, CAFormer) with the strided-in-time stem.

Input (B, 5, 1000, 70) is reflection-padded in time to 1152 and padded in x so that the stem
conv, with its stride changed from 4 to (4, 1), outputs 288 x 72. A time reducer then brings
time to 72: a strided conv (ConvNeXt recipe) or AvgPool(4, 1) in place of the first downsample
(CAFormer recipe). The four stages give features at 72/36/18/9, decoded by a UNet decoder
(CAFormer: pixel-shuffle upsampling with SCSE attention), cropped to 70 x 70.

The stem keeps its original kernel, so timm/ImageNet weights stay loadable (`pretrained`).
"""

from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from kagglekit.fwi.models import MODELS
from kagglekit.fwi.models.base import VelocityModel
from kagglekit.fwi.models.common import same_padding_width, unet_decoder

PADDED_TIME = 1152  # 1152 / 4 / 4 = 72


def create_backbone(name: str, overrides: dict, in_chans: int = 5) -> nn.Module:
    """timm model (no head); `overrides` (depths, dims) build a custom-size variant."""
    if overrides and name.startswith("caformer"):
        from timm.models.metaformer import Attention, LayerNorm2dNoBias, LayerNormNoBias, MetaFormer, SepConv

        return MetaFormer(
            in_chans=in_chans,
            num_classes=0,
            token_mixers=[SepConv, SepConv, Attention, Attention],
            norm_layers=[LayerNorm2dNoBias] * 2 + [LayerNormNoBias] * 2,
            **overrides,
        )
    if overrides and name.startswith("convnext"):
        from timm.models.convnext import ConvNeXt

        return ConvNeXt(in_chans=in_chans, num_classes=0, **overrides)
    return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=0, **overrides)


class FullResUnet(VelocityModel):
    backbone_name = "backbone"

    def __init__(
        self,
        backbone: str,
        time_reducer: str,
        decoder_channels: tuple[int, ...],
        attention: str | None,
        pixel_shuffle: bool,
        backbone_kwargs: dict | None = None,
        input_transform: str = "log1p",
    ):
        super().__init__(input_transform)
        self.backbone = create_backbone(backbone, backbone_kwargs or {})
        self.backbone.head = nn.Identity()  # classification head (and its norm) unused
        stem_conv = self.backbone.stem[0] if isinstance(self.backbone.stem, nn.Sequential) else self.backbone.stem.conv
        stem_conv.stride = (4, 1)
        self.x_pad = same_padding_width(stem_conv.kernel_size[1], stem_conv.padding[1], 70, 72)
        dims = [info["num_chs"] for info in self.backbone.feature_info]  # per stage
        if time_reducer == "conv":
            self.time_reducer = nn.Sequential(
                nn.Conv2d(stem_conv.out_channels, stem_conv.out_channels, (4, 1), (4, 1)),
                nn.BatchNorm2d(stem_conv.out_channels),
                nn.GELU(),
            )
        elif time_reducer == "avgpool":
            self.time_reducer = nn.AvgPool2d((4, 1))
        else:
            raise ValueError(f"unknown time_reducer '{time_reducer}'; valid: conv, avgpool")
        self.decoder = unet_decoder([5, *dims], list(decoder_channels), attention, pixel_shuffle)
        self.head = nn.Conv2d(decoder_channels[-1], 1, 3, padding=1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        top = (PADDED_TIME - x.shape[2]) // 2
        x = F.pad(x, (0, 0, top, PADDED_TIME - x.shape[2] - top), mode="reflect")  # (B, 5, 1152, 70)
        x = F.pad(x, (*self.x_pad, 0, 0), mode="replicate")  # (B, 5, 1152, 70 + pad)
        h = self.time_reducer(self.backbone.stem(x))  # (B, C0, 288, 72) -> (B, C0, 72, 72)
        features = []
        for stage in self.backbone.stages:
            h = stage(h)
            features.append(h)  # 72, 36, 18, 9
        full = x[:, :, :72, :72]  # only its size is used by the decoder
        y = self.head(self.decoder([full, *features]))  # (B, 1, 72, 72)
        return y[:, 0, 1:-1, 1:-1]  # (B, 70, 70)


@MODELS.register("convnext")
def convnext(
    backbone: str = "convnext_small",
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32),
    attention: str | None = None,
    backbone_kwargs: dict | None = None,
    input_transform: str = "log1p",
) -> nn.Module:
    return FullResUnet(backbone, "conv", tuple(decoder_channels), attention, False, backbone_kwargs, input_transform)


@MODELS.register("caformer")
def caformer(
    backbone: str = "caformer_b36",
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32),
    attention: str | None = "scse",
    backbone_kwargs: dict | None = None,
    input_transform: str = "log1p",
) -> nn.Module:
    return FullResUnet(backbone, "avgpool", tuple(decoder_channels), attention, True, backbone_kwargs, input_transform)
