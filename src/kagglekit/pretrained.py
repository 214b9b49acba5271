"""Local pretrained weights for any model: kagglekit checkpoints or timm / smp / torchvision
backbone state dicts, with the input stem adapted to the model's channels. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from kagglekit.engine.checkpoint import load_weights_file
from kagglekit.errors import UserError


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"{path}: pretrained weights not found (pretrained must be a local file; nothing is downloaded)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            first = (str(exc).strip().splitlines() or [""])[0]
            raise UserError(f"{path}: cannot read safetensors weights ({type(exc).__name__}: {first})") from None
    else:
        obj = load_weights_file(path)  # weights_only=True: pickled code is refused, never run
    for key in ("ema", "model", "state_dict"):  # our checkpoints, then common wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return obj[key]
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj


def _adapt(weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Fit a pretrained tensor to a changed layer: input channels (timm's rule) and kernel size."""
    if weight.shape == target.shape:
        return weight
    if weight.ndim != 4 or weight.shape[0] != target.shape[0]:
        return None
    if weight.shape[1] != target.shape[1]:
        if weight.shape[1] not in (1, 3):  # only image stems (RGB / grey) are adapted
            return None
        from timm.models import adapt_input_conv

        weight = adapt_input_conv(target.shape[1], weight)
    if weight.shape[2:] != target.shape[2:]:
        # e.g. a (4, 4) stem kernel fitted to (4, 1): area-resample, keep the summed response
        scale = weight.shape[2] * weight.shape[3] / (target.shape[2] * target.shape[3])
        weight = F.interpolate(weight, size=target.shape[2:], mode="area") * scale
    return weight


def _normalise(key: str) -> str:
    """Key form shared by timm models and their features_only wrappers (stages.0 == stages_0)."""
    return key.replace("_", ".")


PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "encoder.")


def _match(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    by_norm = {_normalise(k): k for k in target}
    loaded: dict[str, torch.Tensor] = {}
    for src_key, tensor in source.items():
        key = src_key
        while True:
            tgt_key = by_norm.get(_normalise(key))
            if tgt_key is not None:
                fitted = _adapt(tensor, target[tgt_key])
                if fitted is not None and tgt_key not in loaded:
                    loaded[tgt_key] = fitted.to(target[tgt_key].dtype)
                break
            stripped = next((key[len(p) :] for p in PREFIXES if key.startswith(p)), None)
            if stripped is None:
                break
            key = stripped
    return loaded


def load_pretrained(model: nn.Module, path: str | Path, min_fraction: float = 0.5) -> dict[str, int]:
    """Load a local checkpoint into `model`: a kagglekit checkpoint (best.pt / last.pt, whole
    model) or backbone weights (timm / smp / torchvision state dict) into `model.backbone_module()`.

    Keys are matched after stripping common prefixes; changed input channels (timm's rule) and
    stem kernels are adapted. Fails when fewer than `min_fraction` of the tensors match.
    """
    path = Path(path)
    source = _read_state_dict(path)
    whole = model.state_dict()
    loaded = _match(source, whole)
    module, target = model, whole
    if len(loaded) / max(1, len(whole)) < min_fraction and hasattr(model, "backbone_module"):
        module = model.backbone_module()
        target = module.state_dict()
        loaded = _match(source, target)
    fraction = len(loaded) / max(1, len(target))
    if fraction < min_fraction:
        raise UserError(
            f"{path}: only {len(loaded)} of {len(target)} tensors match {type(module).__name__} "
            f"({fraction:.0%} < {min_fraction:.0%}); wrong architecture?"
        )
    module.load_state_dict(loaded, strict=False)
    return {"loaded": len(loaded), "total": len(target)}
