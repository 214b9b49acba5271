"""Test-set prediction from run folders: best EMA weights, optional flip TTA, fold averaging."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from kagglekit.config import load_config
from kagglekit.engine.checkpoint import load_checkpoint
from kagglekit.engine.fit import amp_dtype, autocast
from kagglekit.fwi.data.datasets import FWITestDataset
from kagglekit.fwi.data.flip import flip_seismic, flip_velocity
from kagglekit.io import atomic_path, atomic_write_text
from kagglekit.registry import MODELS


def load_run_model(run_dir: str | Path, device: torch.device) -> tuple[torch.nn.Module, object]:
    """The model of a run folder with its best.pt weights (the EMA weights when EMA was on)."""
    import kagglekit.fwi.models  # noqa: F401  (registration)

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    model = MODELS.build(cfg.model.name, **cfg.model.kwargs)
    model.load_state_dict(load_checkpoint(run_dir / "best.pt", required=("model",))["model"])
    return model.to(device).eval(), cfg


@torch.no_grad()
def predict_model(model, seismic: torch.Tensor, tta_flip: bool) -> torch.Tensor:
    """(B, 5, 1000, 70) -> (B, 70, 70); with TTA, the mean of the plain and the flipped pass."""
    out = model(seismic).float()
    if tta_flip:
        out = 0.5 * (out + flip_velocity(model(flip_seismic(seismic)).float()))
    return out


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
        model, cfg = load_run_model(run_dir, dev)
        dtype = amp_dtype(cfg.train.amp, dev)
        target = out_dir / f"{cfg.name}__{run_dir.name}.npy"
        with atomic_path(target) as tmp:
            preds = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(dataset), 70, 70))
            for batch in tqdm(loader, desc=f"predict {cfg.name}/{run_dir.name}", disable=not progress):
                with autocast(dev, dtype):
                    out = predict_model(model, batch["seismic"].to(dev, non_blocking=True), tta_flip)
                preds[batch["position"].numpy()] = out.cpu().numpy().astype(np.float16)
            preds.flush()
            del preds
        written[target.stem] = target
        by_config[cfg.name].append(target)
    for name, paths in by_config.items():
        mean = np.zeros((len(dataset), 70, 70), dtype=np.float32)
        for p in paths:
            mean += np.load(p, mmap_mode="r").astype(np.float32) / len(paths)
        target = out_dir / f"{name}.npy"
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            np.save(f, mean.astype(np.float16))
        written[name] = target
    atomic_write_text(out_dir / "ids.txt", "\n".join(dataset.ids) + "\n")
    return written


def read_ids(path: str | Path) -> list[str]:
    ids = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids")
    return ids
