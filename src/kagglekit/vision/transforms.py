"""albumentations pipelines built from the YAML `augment` list (deterministic under a seed)."""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch


def build_transform(cfg, train: bool, seed: int) -> A.Compose:
    """Resize (optional) + the configured augmentations (training only) + normalisation."""
    steps: list[A.BasicTransform] = []
    if cfg.image_size:
        steps.append(A.Resize(cfg.image_size, cfg.image_size))
    if train:
        for step in cfg.augment:
            if not hasattr(A, step.name):
                raise ValueError(f"unknown albumentations transform '{step.name}' in data.augment")
            steps.append(getattr(A, step.name)(**step.params))
    steps.append(A.Normalize(mean=cfg.mean, std=cfg.std, max_pixel_value=255.0))
    return A.Compose(steps, seed=seed)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) float -> (C, H, W) float32."""
    if image.ndim == 2:
        image = image[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))
