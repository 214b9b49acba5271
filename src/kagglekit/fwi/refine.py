"""`fwi refine`: refine a prediction file against the test seismic, worst-fitting maps first.

OUT_DIR holds `refined.npy` (float16, the ids' order; maps not refined are the start unchanged),
`ids.txt`, `start_misfit.csv` (the ranking: relative misfit of every start map) and
`residuals.csv` (one row per refined sample). Batches are written as they finish: refined rows
first, then their residuals lines, so a rerun into the same OUT_DIR redoes at most the batch
that was cut off and skips every sample already in residuals.csv.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kagglekit.errors import UserError
from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.data.readers import TestFolder
from kagglekit.io import atomic_path, atomic_write_text, read_ids, write_ids
from kagglekit.progress import progress_bar

RESIDUAL_COLUMNS = ["sample_id", "residual_before", "residual_after", "accepted", "iterations", "seconds", "basis"]


def load_predictions(pred_path: str | Path, ids_path: str | Path) -> tuple[np.ndarray, list[str]]:
    """A prediction file (N, 70, 70) memory-mapped, and its ids; shapes and values checked."""
    pred_path = Path(pred_path)
    if not pred_path.is_file():
        raise UserError(f"{pred_path}: prediction file not found")
    try:
        pred = np.load(pred_path, mmap_mode="r")
    except ValueError as err:
        raise UserError(f"{pred_path}: not a .npy array ({err})") from err
    ids = read_ids(ids_path)
    if pred.ndim != 3 or pred.shape[1:] != (70, 70) or len(pred) != len(ids):
        raise UserError(f"{pred_path}: expected ({len(ids)}, 70, 70) predictions for the ids of {ids_path}, found {pred.shape}")
    finite = np.concatenate([np.isfinite(pred[i : i + 4096]).all(axis=(1, 2)) for i in range(0, len(pred), 4096)])
    bad = [ids[i] for i in np.flatnonzero(~finite)]
    if bad:
        raise UserError(f"{pred_path}: {len(bad)} maps have non-finite values (first: {bad[:3]})")
    return pred, ids


def _observed(folder: TestFolder, position: dict[str, int], ids: list[str]) -> torch.Tensor:
    """(B, 5, 1000, 70) float32 seismic of the given ids."""
    return torch.from_numpy(np.stack([folder.read(position[i]) for i in ids]))


def _positions(folder: TestFolder, ids: list[str]) -> dict[str, int]:
    position = {sample_id: i for i, sample_id in enumerate(folder.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise UserError(f"{folder.root}: no seismic for {len(missing)} prediction ids (first: {missing[:3]})")
    return position


def start_misfits(
    pred: np.ndarray,
    ids: list[str],
    folder: TestFolder,
    out_csv: str | Path,
    *,
    device: str = "cpu",
    batch_size: int = 16,
    progress: bool = True,
    reuse: bool = False,
) -> pd.Series:
    """Relative misfit of every map (sample_id -> value), written to out_csv (read back when reuse)."""
    from kagglekit.fwi.physics.refine import relative_misfit

    out_csv = Path(out_csv)
    if reuse and out_csv.is_file():
        done = pd.read_csv(out_csv, dtype={"sample_id": str}).set_index("sample_id")["misfit"]
        if list(done.index) == list(ids):
            return done
    position = _positions(folder, ids)
    values = np.zeros(len(ids))
    bar = progress_bar(total=len(ids), desc="misfit", unit="map", disable=not progress)
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            v = torch.from_numpy(np.asarray(pred[start : start + len(chunk)], np.float32)).clamp(VMIN, VMAX).to(device)
            values[start : start + len(chunk)] = relative_misfit(v, _observed(folder, position, chunk).to(device)).cpu().numpy()
            bar.update(len(chunk))
    bar.close()
    series = pd.Series(values, index=pd.Index(ids, name="sample_id"), name="misfit")
    atomic_write_text(out_csv, series.to_csv())
    return series


def _read_done(path: Path) -> pd.DataFrame:
    """residuals.csv without a line cut off by an interrupted write (the file is rewritten clean)."""
    if not path.is_file():
        return pd.DataFrame(columns=RESIDUAL_COLUMNS)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != RESIDUAL_COLUMNS:
        raise UserError(f"{path}: expected the header {','.join(RESIDUAL_COLUMNS)}, found {rows[0] if rows else 'an empty file'}")
    good = [r for r in rows[1:] if len(r) == len(RESIDUAL_COLUMNS) and all(r)]
    frame = pd.DataFrame(good, columns=RESIDUAL_COLUMNS)
    if len(good) != len(rows) - 1:
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    return frame


def _source_stamp(pred_path: Path) -> dict:
    stat = pred_path.stat()
    return {"pred": str(pred_path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _prepare_out_dir(out_dir: Path, pred_path: Path, pred: np.ndarray, ids: list[str]) -> None:
    """refined.npy (a copy of the start), ids.txt and source.json, or a check that OUT_DIR refines this file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp_file, stamp = out_dir / "source.json", _source_stamp(pred_path)
    if stamp_file.exists() and json.loads(stamp_file.read_text()) != stamp:
        raise UserError(
            f"{out_dir}: continues the refinement of {json.loads(stamp_file.read_text())['pred']} as it was then, "
            f"not {pred_path} now; choose another --out or delete the folder"
        )
    ids_file = out_dir / "ids.txt"
    if ids_file.exists() and read_ids(ids_file) != ids:
        raise UserError(f"{out_dir}: holds the refinement of other ids; choose another --out or delete the folder")
    atomic_write_text(stamp_file, json.dumps(stamp))
    refined = out_dir / "refined.npy"
    if not refined.exists():
        with atomic_path(refined) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=pred.shape)
            out[:] = pred
            out.flush()
            del out
    write_ids(ids_file, ids)


def refine_file(
    pred_path: str | Path,
    ids_path: str | Path,
    test_dir: str | Path,
    out_dir: str | Path,
    *,
    samples: int | None = None,
    budget_minutes: float | None = None,
    iters: int = 40,
    device: str = "cpu",
    batch_size: int = 8,
    settings=None,
    progress: bool = True,
) -> Path:
    """Refine the `samples` worst-fitting maps (all by default) within `budget_minutes`; returns OUT_DIR."""
    from dataclasses import replace

    from kagglekit.fwi.physics.refine import RefineSettings, refine_batch

    t0 = time.time()
    settings = replace(settings or RefineSettings(), iters=iters)
    out_dir = Path(out_dir)
    pred, ids = load_predictions(pred_path, ids_path)
    folder = TestFolder(test_dir)
    position = _positions(folder, ids)
    _prepare_out_dir(out_dir, Path(pred_path), pred, ids)
    ranking = start_misfits(pred, ids, folder, out_dir / "start_misfit.csv", device=device, progress=progress, reuse=True)
    order = np.argsort(-ranking.to_numpy(), kind="stable")[: samples or len(ids)]
    residuals_path = out_dir / "residuals.csv"
    done = set(_read_done(residuals_path)["sample_id"])
    todo = [int(i) for i in order if ids[i] not in done]
    if not todo:
        print(f"refine: nothing to do in {out_dir} ({len(done)} samples refined)")
        return out_dir
    refined = np.load(out_dir / "refined.npy", mmap_mode="r+")
    new_file = not residuals_path.exists()
    bar = progress_bar(total=len(todo), desc="refine", unit="map", disable=not progress)
    gains: list[float] = []
    batch_seconds = 0.0
    with open(residuals_path, "a", newline="") as log:
        writer = csv.writer(log)
        if new_file:
            writer.writerow(RESIDUAL_COLUMNS)
        for start in range(0, len(todo), batch_size):
            spent = time.time() - t0
            if budget_minutes is not None and spent + batch_seconds > budget_minutes * 60:
                print(f"refine: budget of {budget_minutes} min reached after {bar.n} of {len(todo)} maps; rerun to continue")
                break
            rows = todo[start : start + batch_size]
            chunk = [ids[i] for i in rows]
            start_maps = torch.from_numpy(np.stack([np.asarray(pred[i], np.float32) for i in rows])).to(device)
            result = refine_batch(start_maps, _observed(folder, position, chunk).to(device), settings)
            batch_seconds = result.seconds
            velocity = result.velocity.cpu().numpy()
            for j, i in enumerate(rows):
                refined[i] = velocity[j] if bool(result.accepted[j]) else pred[i]
            refined.flush()
            per_sample = result.seconds / len(rows)
            writer.writerows(
                [
                    sample_id,
                    f"{float(result.misfit_before[j]):.6g}",
                    f"{float(result.misfit_after[j]):.6g}",
                    int(bool(result.accepted[j])),
                    result.iterations[j],
                    f"{per_sample:.2f}",
                    result.plans[j],
                ]
                for j, sample_id in enumerate(chunk)
            )
            log.flush()
            os.fsync(log.fileno())
            gains += (1 - result.misfit_after / result.misfit_before.clamp_min(1e-12)).tolist()
            bar.update(len(rows))
            bar.set_postfix(misfit_cut=f"{100 * np.mean(gains):.0f}%", s_per_map=f"{per_sample:.1f}")
    bar.close()
    del refined
    return out_dir


def misfit_files(predictions: dict[str, Path], ids_path: str | Path, test_dir: str | Path, *, device: str = "cpu") -> list[Path]:
    """`<name>.misfit.csv` beside each config-mean prediction file (per-fold files are skipped)."""
    folder, written = TestFolder(test_dir), []
    for name, path in predictions.items():
        if "__" in name:
            continue
        pred, ids = load_predictions(path, ids_path)
        out = path.with_name(f"{name}.misfit.csv")
        start_misfits(pred, ids, folder, out, device=device)
        written.append(out)
    return written
