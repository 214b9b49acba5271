"""Losses (output, target) -> scalar, by name: the supervised term of a task's loss."""

from __future__ import annotations

import torch.nn.functional as F

from kagglekit.registry import Registry

LOSSES = Registry("loss")


@LOSSES.register("l1")
def l1():
    return lambda pred, target: F.l1_loss(pred.float(), target.float())


@LOSSES.register("mse")
def mse():
    return lambda pred, target: F.mse_loss(pred.float(), target.float())


@LOSSES.register("smooth_l1")
def smooth_l1(beta: float = 10.0):
    return lambda pred, target: F.smooth_l1_loss(pred.float(), target.float(), beta=beta)


@LOSSES.register("cross_entropy")
def cross_entropy(label_smoothing: float = 0.0):
    return lambda logits, labels: F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
