"""fit(cfg, fold): the one training loop for every task.

AdamW + warmup/cosine, gradient accumulation and clipping, AMP (bf16, or fp16 with a scaler) on
CUDA, EMA (timm ModelEmaV3; validation and best.pt use the EMA weights), DDP under torchrun
(gloo on CPU), per-epoch validation, metrics.jsonl, atomic best.pt / last.pt, out-of-fold
predictions, and --resume from last.pt that reproduces an uninterrupted run on CPU.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from kagglekit.config import Config, save_config
from kagglekit.engine import distributed
from kagglekit.engine.checkpoint import load_checkpoint, save_checkpoint
from kagglekit.engine.schedule import warmup_cosine
from kagglekit.engine.task import Task, build_task
from kagglekit.io import atomic_save_npy, atomic_write_text


def run_dir_for(cfg: Config, fold: int) -> Path:
    return Path(cfg.out_dir) / cfg.name / ("full" if fold == -1 else f"fold{fold}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: on CUDA bf16 where supported (else fp16) unless set; on CPU only an explicit
    `bf16` (oneDNN bf16 kernels; worth it on CPUs with AVX512-BF16 / AMX)."""
    if setting == "off":
        return None
    if device.type != "cuda":
        return torch.bfloat16 if setting == "bf16" else None
    if setting == "fp16":
        return torch.float16
    if setting == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context for `dtype` on the device's type; a no-op when dtype is None (fp32)."""
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _loader(dataset, cfg: Config, ctx, epoch: int, train: bool) -> DataLoader:
    bs = cfg.train.batch_size if train else (cfg.train.eval_batch_size or cfg.train.batch_size)
    if train:
        # the order depends only on (seed, epoch): resumed runs see the same batches
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.train.seed * 1000 + epoch))
        per_rank = len(order) // ctx.world_size  # equal shards so that DDP steps stay in lockstep
        shard = order[ctx.rank * per_rank : (ctx.rank + 1) * per_rank].tolist()
        dataset = Subset(dataset, shard)
    else:
        dataset = Subset(dataset, list(range(ctx.rank, len(dataset), ctx.world_size)))
    return DataLoader(
        dataset,
        batch_size=bs,
        shuffle=False,
        drop_last=train and len(dataset) >= bs,
        num_workers=cfg.data.num_workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=False,
    )


@torch.no_grad()
def predict_loader(task: Task, model: torch.nn.Module, loader: DataLoader, ctx, dtype, progress: bool):
    """Outputs and eval keys for every batch, on CPU."""
    model.eval()
    outputs, keys = [], {k: [] for k in task.eval_keys}
    for batch in tqdm(loader, desc="valid", leave=False, disable=not progress):
        dev = _to_device(batch, ctx.device)
        with autocast(ctx.device, dtype):
            out = task.forward(model, dev)
        outputs.append(out.float().cpu())
        for k in task.eval_keys:
            keys[k].append(batch[k])
    if not outputs:
        return torch.zeros(0), {k: torch.zeros(0, dtype=torch.long) for k in task.eval_keys}
    return torch.cat(outputs), {k: torch.cat(v) for k, v in keys.items()}


def _gather_predictions(outputs, keys, ctx):
    parts = distributed.gather((outputs, keys), ctx)
    outputs = torch.cat([p[0] for p in parts if len(p[0])])
    keys = {k: torch.cat([p[1][k] for p in parts if len(p[0])]) for k in keys}
    return outputs, keys


def fit(cfg: Config, fold: int, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> Path:
    """Train `cfg` on `fold` (validate on it; -1 = all folds, validate on the holdout). Returns the run folder.

    stop_after=N ends the session after epoch N (last.pt written); --resume continues it later,
    e.g. to split a long run over several Kaggle sessions.
    """
    ctx = distributed.setup()
    try:
        return _fit(cfg, fold, resume, progress and ctx.is_main, ctx, stop_after)
    finally:
        distributed.teardown(ctx)


def _fit(cfg: Config, fold: int, resume: bool, progress: bool, ctx, stop_after: int | None = None) -> Path:
    run_dir = run_dir_for(cfg, fold)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if last_path.exists() and not resume:
        raise FileExistsError(f"{run_dir}: already holds a run; pass --resume to continue it or delete the folder")
    seed_everything(cfg.train.seed)
    task = build_task(cfg)
    train_set, valid_set = task.datasets(fold)
    model = task.build_model().to(ctx.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = ModelEmaV3(model, decay=cfg.train.ema_decay, use_warmup=True) if cfg.train.ema_decay else None
    train_model = DistributedDataParallel(model) if ctx.enabled else model
    if cfg.train.compile:
        train_model = torch.compile(train_model)
    if cfg.train.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum, nesterov=True, weight_decay=cfg.train.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    batches_per_epoch = (len(train_set) // ctx.world_size) // cfg.train.batch_size or 1
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.train.accum_steps)
    scheduler = warmup_cosine(
        optimizer,
        total_steps=steps_per_epoch * cfg.train.epochs,
        warmup_steps=int(cfg.train.warmup_epochs * steps_per_epoch),
        min_lr_ratio=cfg.train.min_lr_ratio,
    )
    dtype = amp_dtype(cfg.train.amp, ctx.device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    sign = 1.0 if task.greater_is_better else -1.0
    start_epoch, best_score, global_step = 0, -math.inf, 0

    if resume and last_path.exists():
        state = load_checkpoint(last_path, required=("model", "optimizer", "scheduler", "epoch"))
        model.load_state_dict(state["model"])
        if ema is not None and state.get("ema") is not None:
            ema.module.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best_score, global_step = state["epoch"] + 1, state["best_score"], state["global_step"]
        _set_rng_state(state["rng"])
        if ctx.is_main:
            print(f"[kagglekit] resumed {last_path} at epoch {start_epoch}/{cfg.train.epochs}")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        print(
            f"[kagglekit] {cfg.name} fold {fold}: {len(train_set)} train / {len(valid_set) if valid_set else 0} valid, "
            f"model {cfg.model.name} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params), "
            f"device {ctx.device}, world {ctx.world_size}, amp {dtype}"
        )

    t_start = time.time()
    stop = False
    for epoch in range(start_epoch, cfg.train.epochs):
        train_model.train()
        loader = _loader(train_set, cfg, ctx, epoch, train=True)
        running, n_seen = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", disable=not progress, mininterval=1.0)
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar):
            batch = _to_device(batch, ctx.device)
            last_micro = (i + 1) % cfg.train.accum_steps == 0 or i + 1 == len(loader)
            sync = nullcontext() if (last_micro or not ctx.enabled) else train_model.no_sync()
            with sync:
                with autocast(ctx.device, dtype):
                    output = task.forward(train_model, batch)
                    terms = task.loss(output, batch)
                scaler.scale(terms["loss"] / cfg.train.accum_steps).backward()
            if last_micro:
                if cfg.train.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                global_step += 1
                if ema is not None:
                    ema.update(model, step=global_step)
            loss_value = float(terms["loss"].detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"{cfg.name} fold {fold}: loss became {loss_value} at epoch {epoch + 1}, batch {i}")
            running += loss_value
            n_seen += 1
            bar.set_postfix(loss=f"{running / n_seen:.2f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            over_time = cfg.train.max_minutes is not None and time.time() - t_start > cfg.train.max_minutes * 60
            if distributed.broadcast_flag(over_time, ctx):
                stop = True
                break
        train_loss = distributed.mean_across(running / max(1, n_seen), ctx)

        eval_model = ema.module if ema is not None else model
        metrics, outputs, keys = {}, None, None
        if valid_set is not None:
            outputs, keys = predict_loader(task, eval_model, _loader(valid_set, cfg, ctx, epoch, train=False), ctx, dtype, progress)
            outputs, keys = _gather_predictions(outputs, keys, ctx)
            metrics = task.evaluate(outputs, keys)
        score = sign * metrics[task.primary_metric] if metrics else float(epoch)
        improved = score > best_score
        if improved:
            best_score = score
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "lr": scheduler.get_last_lr()[0],
            "elapsed_s": round(time.time() - t_start, 1),
            "best": improved,
            "stopped_on_time": stop,
            **{f"valid/{k}": v for k, v in metrics.items()},
        }
        if ctx.is_main:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            summary = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if "/" not in k)
            print(f"[kagglekit] epoch {epoch + 1}: train loss {train_loss:.2f}, {summary}{' (best)' if improved else ''}")
            if improved:
                save_checkpoint(
                    {"model": eval_model.state_dict(), "epoch": epoch, "metrics": metrics, "config": cfg.model_dump(mode="json")},
                    best_path,
                )
                if outputs is not None:
                    oof, ids = task.oof(outputs, keys)
                    atomic_save_npy(run_dir / "oof.npy", oof)
                    atomic_write_text(run_dir / "oof_ids.csv", ids.to_csv(index=False))
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "ema": ema.module.state_dict() if ema is not None else None,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "global_step": global_step,
                    "best_score": best_score,
                    "rng": _rng_state(),
                    "config": cfg.model_dump(mode="json"),
                },
                last_path,
            )
        if stop:
            if ctx.is_main:
                print(f"[kagglekit] stopped after {cfg.train.max_minutes} min (train.max_minutes)")
            break
        if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < cfg.train.epochs:
            if ctx.is_main:
                print(f"[kagglekit] paused after epoch {epoch + 1} (--stop-after); continue with --resume")
            break
    finished = start_epoch < cfg.train.epochs and (stop or epoch + 1 >= cfg.train.epochs)  # trained to the end now
    if ctx.is_main and best_path.exists() and finished and hasattr(task, "after_fit"):
        task.after_fit(run_dir)
    if ctx.is_main and best_path.exists():
        best = load_checkpoint(best_path, required=("metrics",))
        if best["metrics"]:
            print(f"[kagglekit] best epoch {best['epoch'] + 1} of {run_dir}:\n{task.report(best['metrics'])}")
    return run_dir
