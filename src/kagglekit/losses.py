"""Regression losses (pred, target) -> scalar, by name. The physics misfit joins as one more term."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from kagglekit.registry import LOSSES


@LOSSES.register("l1")
def l1():
    return lambda pred, target: F.l1_loss(pred.float(), target.float())


@LOSSES.register("mse")
def mse():
    return lambda pred, target: F.mse_loss(pred.float(), target.float())


@LOSSES.register("smooth_l1")
def smooth_l1(beta: float = 10.0):
    return lambda pred, target: F.smooth_l1_loss(pred.float(), target.float(), beta=beta)


def build_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return LOSSES.build(name)
