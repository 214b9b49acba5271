"""Test-set prediction from run folders: best EMA weights, flip TTA (engine/tta.py), fold averaging.

Every file written is a `Predictions` file: `<name>.npy` with the test ids in `ids.txt` beside it and
the absolute run folders it came from in `runs.json` (`{<name>: [run dirs]}`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kagglekit.device import resolve_device
from kagglekit.engine.amp import amp_dtype, autocast
from kagglekit.engine.runs import load_run
from kagglekit.engine.tta import predict_batch
from kagglekit.errors import UserError
from kagglekit.fwi.constants import VELOCITY_SHAPE
from kagglekit.fwi.data.datasets import FWITestDataset
from kagglekit.fwi.predictions import Predictions
from kagglekit.io import atomic_path
from kagglekit.parallel import remove_stale_temps
from kagglekit.progress import progress_bar

_CHUNK = 4096  # maps per step of the fold mean (bounded memory)


def predict_runs(
    run_dirs: list[str | Path],
    test_dir: str | Path,
    out_dir: str | Path,
    tta_flip: bool = True,
    batch_size: int = 32,
    num_workers: int = 2,
    device: str | None = "auto",
    progress: bool = True,
) -> dict[str, Path]:
    """Predict every run; write `<config>__<fold>.npy` per run and `<config>.npy`, the mean of a
    config's folds (float16, (N, 70, 70)), with `ids.txt` and `runs.json` beside them; returns
    {file stem: path}."""
    dev = torch.device(resolve_device(device))
    dataset = FWITestDataset(test_dir)
    out_dir = Path(out_dir)
    Predictions.check_folder_ids(out_dir, dataset.ids)  # before any work
    remove_stale_temps(out_dir)  # the .NAME.tmp-<pid> files of a killed earlier run (a file's size each)
    created = not out_dir.exists()
    try:
        return _predict_runs(run_dirs, dataset, out_dir, tta_flip, batch_size, num_workers, dev, progress)
    except BaseException:  # e.g. a damaged test file found mid-way: leave no empty --out behind
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise


def _predict_runs(run_dirs, dataset, out_dir: Path, tta_flip, batch_size, num_workers, dev, progress) -> dict[str, Path]:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=dev.type == "cuda")
    written: dict[str, Path] = {}
    by_config: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for run_dir in map(Path, run_dirs):
        run = load_run(run_dir, dev)
        if run.cfg.task != "fwi":
            raise UserError(f"{run_dir}: a '{run.cfg.task}' run, not a waveform-inversion run")
        dtype = amp_dtype(run.cfg.train.amp, dev)
        target = out_dir / f"{run.cfg.name}__{run_dir.name}.npy"
        with atomic_path(target) as tmp:
            preds = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(dataset), *VELOCITY_SHAPE))
            for batch in progress_bar(loader, desc=f"predict {run.cfg.name}/{run_dir.name}", disable=not progress):
                with autocast(dev, dtype):
                    out = predict_batch(run.task, run.model, {"seismic": batch["seismic"].to(dev, non_blocking=True)}, tta_flip)
                preds[batch["position"].numpy()] = out.cpu().numpy().astype(np.float16)  # (B, 70, 70)
            preds.flush()
            del preds
        run_path = str(run_dir.resolve())
        Predictions(np.load(target, mmap_mode="r"), dataset.ids, target, [run_path]).write_sidecars(target)
        written[target.stem] = target
        by_config[run.cfg.name].append((target, run_path))
    for name, members in by_config.items():
        written[name] = _fold_mean([Predictions.read(p) for p, _ in members], out_dir / f"{name}.npy", [r for _, r in members])
    return written


def _fold_mean(folds: list[Predictions], target: Path, runs: list[str]) -> Path:
    """The mean of a config's fold predictions (same ids, same order), streamed chunk by chunk."""
    ids = folds[0].ids
    with atomic_path(target) as tmp:
        mean = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(ids), *VELOCITY_SHAPE))
        for start in range(0, len(ids), _CHUNK):
            stop = min(len(ids), start + _CHUNK)
            total = sum(np.asarray(f.values[start:stop], dtype=np.float32) for f in folds)  # (k, 70, 70)
            mean[start:stop] = (total / len(folds)).astype(np.float16)
        mean.flush()
        del mean
    Predictions(np.load(target, mmap_mode="r"), ids, target, runs).write_sidecars(target)
    return target
