"""Mixed precision: which autocast dtype a setting means on a device, and the context for it."""

from __future__ import annotations

from contextlib import nullcontext

import torch


def native_bf16(device: torch.device) -> bool:
    """True when the GPU computes bf16 in hardware (Ampere and newer), not by emulation."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for `train.amp` (auto | bf16 | fp16 | off) on `device`.

    CUDA: `auto` is bf16 where the GPU has it natively, else fp16 (with a GradScaler); an explicit
    setting is taken as given. CPU: only an explicit `bf16` autocasts (oneDNN bf16 kernels, worth it
    on CPUs with AVX512-BF16 / AMX); `auto` and `fp16` stay fp32.
    """
    if setting == "off":
        return None
    if device.type != "cuda":
        return torch.bfloat16 if setting == "bf16" else None
    if setting == "fp16":
        return torch.float16
    if setting == "bf16" or native_bf16(device):
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context for `dtype` on the device's type; a no-op when dtype is None (fp32)."""
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 on CUDA (bf16 and fp32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and dtype == torch.float16)
