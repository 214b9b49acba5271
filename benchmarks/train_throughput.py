"""Training and inference throughput of every full-size FWI model config.

    .venv/bin/python benchmarks/train_throughput.py [--batch 2] [--steps 3] [--device cpu|cuda]
    .venv/bin/python benchmarks/train_throughput.py --configs small_unet --batch 16 --amp off bf16

AMP: the config's setting (`auto`: fp32 on CPU, bf16 where supported on CUDA) unless --amp lists
settings to compare (each row's speed-up is against the first setting, same run).
Reports samples/s for a training step (forward + backward + AdamW) and for inference.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from kagglekit.config import load_config
from kagglekit.engine.amp import amp_dtype, autocast
from kagglekit.fwi.models import MODELS

ROOT = Path(__file__).resolve().parents[1]

FULL_CONFIGS = ["inversionnet", "unet", "hgnet_b2", "convnext_small", "caformer_b36"]


def measure(cfg, batch: int, steps: int, device: torch.device, amp: str) -> tuple[float, float, float]:
    torch.manual_seed(0)
    model = MODELS.build(cfg.model.name, **cfg.model.kwargs).to(device)
    if cfg.train.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    dtype = amp_dtype(amp, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = (torch.randn(batch, 5, 1000, 70, device=device) * 5).half()
    y = torch.rand(batch, 70, 70, device=device) * 3000 + 1500

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step():
        with autocast(device, dtype):
            loss = (model(x) - y).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    train_step()  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    sync()
    train_rate = batch * steps / (time.perf_counter() - t0)
    model.eval()
    with torch.no_grad(), autocast(device, dtype):
        model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
    infer_rate = batch * steps / (time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return params, train_rate, infer_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--configs", nargs="*", default=FULL_CONFIGS)
    parser.add_argument(
        "--amp", nargs="*", choices=["auto", "bf16", "fp16", "off"], help="settings to compare (default: the config's)"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; batch {args.batch}; input (B, 5, 1000, 70) fp16 -> model")
    print("| config | model | amp | params (M) | train samples/s | inference samples/s | train / infer speed-up |")
    print("|---|---|---|---:|---:|---:|---:|")
    for cfg_name in args.configs:
        cfg = load_config(ROOT / "configs" / "fwi" / f"{cfg_name}.yaml")
        first = None
        for amp in args.amp or [cfg.train.amp]:
            params, train_rate, infer_rate = measure(cfg, args.batch, args.steps, device, amp)
            first = first or (train_rate, infer_rate)
            speedup = f"{train_rate / first[0]:.2f}x / {infer_rate / first[1]:.2f}x"
            print(
                f"| {cfg_name} | {cfg.model.name} | {amp} | {params:.1f} | {train_rate:.2f} | {infer_rate:.2f} | {speedup} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
