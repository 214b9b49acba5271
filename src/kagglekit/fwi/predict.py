"""Test-set prediction from run folders: best EMA weights, flip TTA (engine/tta.py), fold averaging."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kagglekit.engine.amp import amp_dtype, autocast
from kagglekit.engine.runs import load_run
from kagglekit.engine.tta import predict_batch
from kagglekit.errors import UserError
from kagglekit.fwi.data.datasets import FWITestDataset
from kagglekit.io import atomic_path, atomic_save_npy, write_ids
from kagglekit.progress import progress_bar


def predict_runs(
    run_dirs: list[str | Path],
    test_dir: str | Path,
    out_dir: str | Path,
    tta_flip: bool = True,
    batch_size: int = 32,
    num_workers: int = 2,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Predict every run; write `<config>__<fold>.npy` per run and `<config>.npy`, the mean of a
    config's folds (float16, (N, 70, 70)), plus `ids.txt` (one id per line, in array order)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dataset = FWITestDataset(test_dir)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=dev.type == "cuda")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    by_config: dict[str, list[Path]] = defaultdict(list)
    for run_dir in map(Path, run_dirs):
        run = load_run(run_dir, dev)
        if run.cfg.task != "fwi":
            raise UserError(f"{run_dir}: a '{run.cfg.task}' run, not a waveform-inversion run")
        dtype = amp_dtype(run.cfg.train.amp, dev)
        target = out_dir / f"{run.cfg.name}__{run_dir.name}.npy"
        with atomic_path(target) as tmp:
            preds = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(dataset), 70, 70))
            for batch in progress_bar(loader, desc=f"predict {run.cfg.name}/{run_dir.name}", disable=not progress):
                with autocast(dev, dtype):
                    out = predict_batch(run.task, run.model, {"seismic": batch["seismic"].to(dev, non_blocking=True)}, tta_flip)
                preds[batch["position"].numpy()] = out.cpu().numpy().astype(np.float16)
            preds.flush()
            del preds
        written[target.stem] = target
        by_config[run.cfg.name].append(target)
    for name, paths in by_config.items():
        mean = np.zeros((len(dataset), 70, 70), dtype=np.float32)
        for p in paths:
            mean += np.load(p, mmap_mode="r").astype(np.float32) / len(paths)
        atomic_save_npy(out_dir / f"{name}.npy", mean.astype(np.float16))
        written[name] = out_dir / f"{name}.npy"
    write_ids(out_dir / "ids.txt", dataset.ids)
    return written
