"""`VelocityModel`: what every velocity model does around its body (as smp's `SegmentationModel`).

forward: check the input shape, compress amplitudes (`input_transform`), run `body`, bound the
logits to velocities. Subclasses write only `body`; `backbone_name` names the submodule that
timm/smp starting weights go into (`pretrained`). The base holds no parameters, so checkpoints'
state_dict keys are those of the body.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from kagglekit.errors import UserError
from kagglekit.fwi.constants import SEISMIC_SHAPE
from kagglekit.fwi.models.common import INPUT_TRANSFORMS, bound_velocity, transform_seismic


class VelocityModel(nn.Module):
    """(B, 5, 1000, 70) seismic -> (B, 70, 70) m/s in (1500, 4500)."""

    backbone_name = ""  # dotted submodule path of the pretrained backbone; "" = the whole model

    def __init__(self, input_transform: str = "log1p"):
        super().__init__()
        if input_transform not in INPUT_TRANSFORMS:
            raise ValueError(f"unknown input transform '{input_transform}'; valid: {', '.join(INPUT_TRANSFORMS)}")
        self.input_transform = input_transform

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 5, 1000, 70) transformed float32 seismic -> (B, 70, 70) unbounded logits."""
        raise NotImplementedError

    def forward(self, seismic: torch.Tensor) -> torch.Tensor:
        check_seismic_shape(seismic, type(self).__name__)
        x = transform_seismic(seismic, self.input_transform)  # (B, 5, 1000, 70) float32
        return bound_velocity(self.body(x))  # (B, 70, 70)

    def backbone_module(self) -> nn.Module:
        """Where timm/smp backbone weights go (`pretrained`)."""
        return self.get_submodule(self.backbone_name)


def check_seismic_shape(seismic: torch.Tensor, who: str) -> None:
    if seismic.ndim != 4 or tuple(seismic.shape[1:]) != SEISMIC_SHAPE:
        expected = ", ".join(map(str, SEISMIC_SHAPE))
        raise UserError(f"{who}: expected seismic of shape (B, {expected}), found {tuple(seismic.shape)}")
