"""fit(cfg, fold): the one training loop for every task.

AdamW or SGD with warmup + cosine by progress (engine/schedule.py), gradient accumulation and
clipping, AMP (engine/amp.py), EMA (timm ModelEmaV3; validation and best.pt use the EMA weights),
DDP under torchrun (gloo on CPU), per-epoch validation, metrics.jsonl, atomic best.pt / last.pt,
out-of-fold predictions, and --resume from last.pt that reproduces an uninterrupted run on CPU.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from kagglekit.config import Config, save_config
from kagglekit.engine import distributed
from kagglekit.engine.amp import amp_dtype, autocast, grad_scaler
from kagglekit.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from kagglekit.engine.runs import RunFolder, load_weights, without_starting_weights
from kagglekit.engine.schedule import ProgressSchedule
from kagglekit.engine.task import ExtraData, Task, build_task
from kagglekit.engine.tta import predict_batch
from kagglekit.io import atomic_save_npy, atomic_write_text
from kagglekit.log import logger
from kagglekit.progress import progress_bar


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    """Every RNG's state as tensors and plain lists (last.pt loads with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def make_loader(dataset, cfg: Config, ctx, epoch: int, train: bool, batch_size: int | None = None) -> DataLoader:
    """This rank's share of `dataset`; a training order that depends only on (seed, epoch)."""
    bs = batch_size or (cfg.train.batch_size if train else (cfg.train.eval_batch_size or cfg.train.batch_size))
    if train:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.train.seed * 1000 + epoch))
        per_rank = len(order) // ctx.world_size  # equal shards so that DDP steps stay in lockstep
        dataset = Subset(dataset, order[ctx.rank * per_rank : (ctx.rank + 1) * per_rank].tolist())
    else:
        dataset = Subset(dataset, list(range(ctx.rank, len(dataset), ctx.world_size)))
    return DataLoader(
        dataset,
        batch_size=bs,
        shuffle=False,
        drop_last=train and len(dataset) >= bs,
        num_workers=cfg.train.num_workers,
        pin_memory=ctx.device.type == "cuda",
    )


@torch.no_grad()
def predict_loader(task: Task, model: torch.nn.Module, loader: DataLoader, ctx, dtype, progress: bool, tta: bool = False):
    """Outputs (on CPU) and the task's eval keys for every batch of `loader`."""
    model.eval()
    outputs, keys = [], {k: [] for k in task.eval_keys}
    for batch in progress_bar(loader, desc="valid", leave=False, disable=not progress):
        with autocast(ctx.device, dtype):
            out = predict_batch(task, model, _to_device(batch, ctx.device), tta)
        outputs.append(out.cpu())
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


@dataclass
class _Run:
    """Everything one fit() call trains with; the steps below read and advance it."""

    cfg: Config
    fold: int
    ctx: distributed.DistContext
    progress: bool
    run_dir: Path
    task: Task
    train_set: object
    valid_set: object
    model: torch.nn.Module
    train_model: torch.nn.Module
    ema: ModelEmaV3 | None
    optimizer: torch.optim.Optimizer
    schedule: ProgressSchedule
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None
    fold_signature: str
    extra: ExtraData | None = None  # the task's second stream of inputs (task.extra_data), e.g. unlabeled
    epoch: int = 0  # the next epoch to train (0-based)
    global_step: int = 0
    best_score: float = -math.inf
    elapsed_before: float = 0.0  # training seconds of earlier sessions (resume)
    t_start: float = 0.0

    @property
    def sign(self) -> float:
        return 1.0 if self.task.greater_is_better else -1.0

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.t_start

    def log(self, message: str) -> None:
        if self.ctx.is_main:
            logger.info(message)


def fit(cfg: Config, fold: int, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> Path:
    """Train `cfg` on `fold` (validate on it; -1 = all folds, validate on the holdout). Returns the run folder.

    stop_after=N ends the session after epoch N (last.pt written); --resume continues it later,
    e.g. to split a long run over several Kaggle sessions.
    """
    ctx = distributed.setup()
    try:
        run = _set_up(cfg, fold, resume, progress and ctx.is_main, ctx)
        first_epoch = run.epoch
        while run.epoch < cfg.train.epochs and not run.schedule.done:
            train_loss, epochs_done, extras = _train_epoch(run)
            metrics, outputs, keys = _validate(run)
            _save_epoch(run, train_loss, epochs_done, extras, metrics, outputs, keys)
            run.epoch += 1
            if stop_after is not None and run.epoch >= stop_after and run.epoch < cfg.train.epochs and not run.schedule.done:
                run.log(f"paused after epoch {run.epoch} (--stop-after); continue with --resume")
                return run.run_dir
        _finish(run, trained_now=run.epoch > first_epoch)
        return run.run_dir
    finally:
        distributed.teardown(ctx)


def _set_up(cfg: Config, fold: int, resume: bool, progress: bool, ctx) -> _Run:
    """Task, data, model, EMA, optimizer, schedule, scaler; the state of last.pt when resuming."""
    folder = RunFolder.of(cfg, fold)
    run_dir, last_path = folder.path, folder.last
    if last_path.exists() and not resume:
        raise FileExistsError(f"{run_dir}: already holds a run; pass --resume to continue it or delete the folder")
    seed_everything(cfg.train.seed)
    task = build_task(without_starting_weights(cfg) if resume and last_path.exists() else cfg)  # last.pt holds the weights
    train_set, valid_set = task.datasets(fold)
    extra = task.extra_data() if hasattr(task, "extra_data") else None
    if extra is not None and not hasattr(task, "extra_loss"):
        raise TypeError(f"task '{cfg.task}': extra_data() needs an extra_loss(model, batch, progress) hook")
    model = task.build_model().to(ctx.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = ModelEmaV3(model, decay=cfg.train.ema_decay, use_warmup=True) if cfg.train.ema_decay else None
    train_model = DistributedDataParallel(model) if ctx.enabled else model
    if cfg.train.compile:
        train_model = torch.compile(train_model)
    if cfg.train.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum, nesterov=True, weight_decay=cfg.train.weight_decay
        )
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    batches_per_epoch = (len(train_set) // ctx.world_size) // cfg.train.batch_size or 1
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.train.accum_steps)
    schedule = ProgressSchedule(
        optimizer,
        total_steps=steps_per_epoch * cfg.train.epochs,
        warmup_steps=int(cfg.train.warmup_epochs * steps_per_epoch),
        min_lr_ratio=cfg.train.min_lr_ratio,
    )
    dtype = amp_dtype(cfg.train.amp, ctx.device)
    run = _Run(
        cfg,
        fold,
        ctx,
        progress,
        run_dir,
        task,
        train_set,
        valid_set,
        model,
        train_model,
        ema,
        optimizer,
        schedule,
        grad_scaler(ctx.device, dtype),
        dtype,
        task.fold_signature(),
        extra,
    )
    if resume and last_path.exists():
        _restore(run, last_path)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, folder.config_path)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    run.log(
        f"{cfg.name} fold {fold}: {len(train_set)} train / {len(valid_set) if valid_set else 0} valid, "
        f"model {cfg.model.name} ({n_params:.2f}M params), device {ctx.device}, world {ctx.world_size}, amp {dtype}"
    )
    run.t_start = time.time()
    return run


def _restore(run: _Run, last_path: Path) -> None:
    state = load_checkpoint(last_path, required=("model", "optimizer", "schedule", "epoch", "fold_signature"))
    if state["fold_signature"] != run.fold_signature:
        raise CheckpointError(
            f"{last_path}: trained on another fold assignment (fold signature {state['fold_signature'][:12]} vs "
            f"{run.fold_signature[:12]} now); the folds changed since this run started: restore them or start a new run"
        )
    config_path = RunFolder(run.run_dir).config_path
    load_weights(run.model, state["model"], last_path, config_path)
    if run.ema is not None and state.get("ema") is not None:
        load_weights(run.ema.module, state["ema"], last_path, config_path)
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["schedule"])
    run.scaler.load_state_dict(state["scaler"])
    run.epoch, run.best_score, run.global_step = state["epoch"] + 1, state["best_score"], state["global_step"]
    run.elapsed_before = state.get("elapsed_s", 0.0)
    _set_rng_state(state["rng"])
    run.log(f"resumed {last_path} at epoch {run.epoch + 1}/{run.cfg.train.epochs}")


def _progress(run: _Run) -> float:
    """Schedule progress: the larger of the step fraction and (under a budget) the time fraction."""
    steps = run.global_step / run.schedule.total_steps
    if run.cfg.train.max_minutes is None:
        return steps
    elapsed = distributed.broadcast_value(run.elapsed(), run.ctx)  # rank 0's clock, so all ranks agree
    return max(steps, elapsed / (run.cfg.train.max_minutes * 60))


class _TermMeans:
    """Running means of logged loss terms over an epoch."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, terms: dict[str, torch.Tensor], prefix: str = "") -> None:
        for k, v in terms.items():
            key = prefix + k
            self.sums[key] = self.sums.get(key, 0.0) + float(v.detach())
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self, ctx) -> dict[str, float]:
        return {k: distributed.mean_across(self.sums[k] / self.counts[k], ctx) for k in sorted(self.sums)}


def _extra_batches(run: _Run):
    """Endless batches of the task's extra data, reshuffled every pass."""
    n_pass = 0
    while True:
        seed = run.epoch * 1000 + n_pass  # deterministic per (epoch, pass): resume-safe on CPU
        yield from make_loader(run.extra.dataset, run.cfg, run.ctx, seed, train=True, batch_size=run.extra.batch_size)
        n_pass += 1


def _extra_step(run: _Run, batch: dict, means: _TermMeans) -> None:
    """Forward + backward of one extra batch through task.extra_loss (gradients accumulate locally
    under DDP's no_sync; the next labeled backward reduces them)."""
    sync = run.train_model.no_sync() if run.ctx.enabled else nullcontext()
    with sync:
        with autocast(run.ctx.device, run.dtype):
            terms = run.task.extra_loss(run.train_model, batch, run.schedule.progress)
        run.scaler.scale(terms["loss"] / run.cfg.train.accum_steps).backward()
    means.add(terms, prefix=f"{run.extra.name}_")


def _check_finite(run: _Run, terms: dict[str, torch.Tensor], batch_index: int) -> float:
    value = float(terms["loss"].detach())
    if not math.isfinite(value):
        bad = {k: float(v.detach()) for k, v in terms.items()}
        raise FloatingPointError(
            f"{run.cfg.name} fold {run.fold}: loss became {value} at epoch {run.epoch + 1}, batch {batch_index} (terms {bad})"
        )
    return value


def _train_epoch(run: _Run) -> tuple[float, float, dict[str, float]]:
    """One pass over this epoch's batches (or until the schedule ends); (mean "loss", epochs done,
    mean of every other term the task returned, e.g. physics, unlabeled_physics)."""
    cfg, ctx, task = run.cfg, run.ctx, run.task
    run.train_model.train()
    if hasattr(run.train_set, "set_epoch"):  # e.g. on-the-fly data that is new every epoch
        run.train_set.set_epoch(run.epoch)
    loader = make_loader(run.train_set, cfg, ctx, run.epoch, train=True)
    extra = _extra_batches(run) if run.extra is not None else None
    means = _TermMeans()
    running, n_seen = 0.0, 0
    bar = progress_bar(loader, desc=f"epoch {run.epoch + 1}/{cfg.train.epochs}", disable=not run.progress)
    run.optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(bar):
        batch = _to_device(batch, ctx.device)
        if hasattr(task, "prepare_batch"):  # optional: finish a batch on the device (fwi: simulate)
            batch = task.prepare_batch(batch)
        last_micro = (i + 1) % cfg.train.accum_steps == 0 or i + 1 == len(loader)
        sync = nullcontext() if (last_micro or not ctx.enabled) else run.train_model.no_sync()
        if extra is not None and i % run.extra.every == 0:
            _extra_step(run, _to_device(next(extra), ctx.device), means)
        with sync:
            with autocast(ctx.device, run.dtype):
                output = task.forward(run.train_model, batch)
                if hasattr(task, "train_loss"):
                    terms = task.train_loss(output, batch, run.schedule.progress)
                else:
                    terms = task.loss(output, batch)
            run.scaler.scale(terms["loss"] / cfg.train.accum_steps).backward()
        running += _check_finite(run, terms, i)
        n_seen += 1
        means.add({k: v for k, v in terms.items() if k != "loss"})
        if last_micro:
            _optimizer_step(run)
            bar.set_postfix(loss=f"{running / n_seen:.3g}", lr=f"{run.schedule.get_last_lr()[0]:.2e}")
            if run.schedule.done:
                break  # the budget is spent: the schedule has annealed, stop mid-epoch
    bar.close()
    train_loss = distributed.mean_across(running / max(1, n_seen), ctx)
    return train_loss, run.epoch + n_seen / max(1, len(loader)), means.means(ctx)


def _optimizer_step(run: _Run) -> None:
    if run.cfg.train.grad_clip:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.train.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.global_step += 1
    run.schedule.step(_progress(run))
    if run.ema is not None:
        run.ema.update(run.model, step=run.global_step)


def _validate(run: _Run):
    """Metrics of the EMA (or plain) model on the validation set, gathered from every rank."""
    if run.valid_set is None:
        return {}, None, None
    loader = make_loader(run.valid_set, run.cfg, run.ctx, run.epoch, train=False)
    outputs, keys = predict_loader(run.task, run.eval_model, loader, run.ctx, run.dtype, run.progress)
    outputs, keys = _gather_predictions(outputs, keys, run.ctx)
    return run.task.evaluate(outputs, keys), outputs, keys


def _save_epoch(run: _Run, train_loss: float, epochs_done: float, extras: dict, metrics: dict, outputs, keys) -> None:
    """metrics.jsonl line; best.pt and the OOF files when the score improved; last.pt always."""
    score = run.sign * metrics[run.task.primary_metric] if metrics else float(run.epoch)
    improved = score > run.best_score
    if improved:
        run.best_score = score
    if not run.ctx.is_main:
        return
    record = {
        "epoch": run.epoch + 1,
        "epochs_done": round(epochs_done, 3),
        "train_loss": train_loss,
        **{f"train_{k}": v for k, v in extras.items()},
        "lr": run.schedule.get_last_lr()[0],
        "elapsed_s": round(run.elapsed(), 1),
        "best": improved,
        "budget_spent": run.schedule.done and run.global_step < run.schedule.total_steps,  # the time budget ended the run
        **{f"valid/{k}": v for k, v in metrics.items()},
    }
    folder = RunFolder(run.run_dir)
    folder.write_epoch_metrics(record)
    summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if "/" not in k)
    extra = "".join(f", train {k} {v:.4g}" for k, v in extras.items())
    run.log(f"epoch {run.epoch + 1}: train loss {train_loss:.4g}{extra}, {summary}{' (best)' if improved else ''}")
    common = {"config": run.cfg.model_dump(mode="json"), "fold_signature": run.fold_signature}
    if improved:
        best = {"model": run.eval_model.state_dict(), "epoch": run.epoch, "epochs_done": epochs_done, "metrics": metrics}
        save_checkpoint({**best, **common, "primary_metric": run.task.primary_metric}, folder.best)
        if outputs is not None:
            oof, ids = run.task.oof(outputs, keys)
            atomic_save_npy(folder.oof_path, oof)
            atomic_write_text(folder.oof_ids_path, ids.to_csv(index=False))
    last = {
        "model": run.model.state_dict(),
        "ema": run.ema.module.state_dict() if run.ema is not None else None,
        "optimizer": run.optimizer.state_dict(),
        "schedule": run.schedule.state_dict(),
        "scaler": run.scaler.state_dict(),
        "epoch": run.epoch,
        "global_step": run.global_step,
        "best_score": run.best_score,
        "elapsed_s": run.elapsed(),
        "rng": _rng_state(),
    }
    save_checkpoint({**last, **common}, folder.last)


def _finish(run: _Run, trained_now: bool) -> None:
    """The task's after-fit step (e.g. calibration) and the best epoch's report."""
    best_path = RunFolder(run.run_dir).best
    if not run.ctx.is_main or not best_path.exists():
        return
    if run.schedule.done and run.epoch < run.cfg.train.epochs:
        run.log(f"time budget of {run.cfg.train.max_minutes} min spent after {run.epoch} of {run.cfg.train.epochs} epochs")
    if trained_now and hasattr(run.task, "after_fit"):
        run.task.after_fit(run.run_dir)
    best = load_checkpoint(best_path, required=("metrics",))
    if best["metrics"]:
        done = best.get("epochs_done", best["epoch"] + 1)
        run.log(
            f"best epoch {best['epoch'] + 1} ({done:.2f} epochs trained) of {run.run_dir}:\n{run.task.report(best['metrics'])}"
        )
