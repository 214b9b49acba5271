"""`kagglekit fwi pseudo-label`: one round of pseudo-labelling from a trained run.

1. predict the test set with the run (flip TTA) and measure each map's seismic misfit;
2. optionally refine the worst-fitting maps against their seismic (`fwi refine`, a time budget);
3. simulate the predicted maps and write the (simulated seismic, predicted map) pairs as a
   generated folder (origin "pseudo:<test id>"; they train every fold, never validate);
4. fine-tune the run on its training folders plus the pseudo pairs (new run `<name>_pl<k>`, from
   the run's best weights, for a time budget); with `control`, also fine-tune the same way
   without the pairs, so a gain can be told apart from "more training";
5. predict again; report the misfit, and the test MAE when hidden labels are given (the
   synthetic competition's test_labels.npy).

Every step writes into OUT and is skipped when its output is already there: a rerun resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kagglekit.config import load_config
from kagglekit.errors import UserError
from kagglekit.fwi.augment.folder import GeneratedRows, format_origin, write_generated_folder
from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.metrics import mae_table
from kagglekit.io import atomic_write_text, read_ids
from kagglekit.report import markdown_table


def _fold_of(run_dir: Path) -> int:
    match = re.fullmatch(r"fold(\d+)|full", run_dir.name)
    if not match or not (run_dir / "best.pt").is_file():
        raise UserError(f"{run_dir}: not a finished run folder (expected <out_dir>/<config>/fold<k>/best.pt)")
    return -1 if run_dir.name == "full" else int(match.group(1))


def next_round_name(name: str) -> str:
    """'unet' -> 'unet_pl1', 'unet_pl1' -> 'unet_pl2'."""
    match = re.fullmatch(r"(.*)_pl(\d+)", name)
    return f"{match.group(1)}_pl{int(match.group(2)) + 1}" if match else f"{name}_pl1"


def write_pseudo_folder(
    pred: np.ndarray, ids: list[str], out: Path, *, device: str = "cpu", batch: int = 32, progress: bool = True
) -> Path:
    """(N, 70, 70) predicted maps -> a generated folder of (simulate(map), map) rows."""
    from kagglekit.fwi.augment.augment import simulate_maps

    maps = np.clip(np.asarray(pred, dtype=np.float32), VMIN, VMAX)  # (N, 70, 70)
    digest = hashlib.sha256(maps.tobytes()).hexdigest()[:16]
    plan = {"kind": "pseudo", "version": 1, "maps": digest, "ids": len(ids)}
    shard_size = 256

    def make_shard(shard: int, n: int) -> GeneratedRows:
        v = maps[shard * shard_size : shard * shard_size + n]
        seismic, _ = simulate_maps(v, device=device, batch=batch)
        origins = [format_origin("pseudo", [i]) for i in ids[shard * shard_size : shard * shard_size + n]]
        return GeneratedRows(v, seismic, ["pseudo"] * n, origins)

    return write_generated_folder(out, plan, len(maps), shard_size, make_shard, progress=progress, desc="pseudo pairs")


def _score(pred_path: Path, ids: list[str], test_dir: Path, work: Path, tag: str, labels, device: str) -> dict:
    from kagglekit.fwi.data.readers import TestFolder
    from kagglekit.fwi.refine import start_misfits

    pred = np.load(pred_path).astype(np.float32)
    misfit = start_misfits(pred, ids, TestFolder(test_dir), work / f"misfit_{tag}.csv", device=device, progress=False, reuse=True)
    row = {"misfit_mean": float(misfit.mean()), "misfit_median": float(misfit.median())}
    if labels is not None:
        truth, families = labels
        row.update(
            {f"mae/{k}" if k not in ("mae", "mae_all_columns") else k: v for k, v in mae_table(pred, truth, families).items()}
        )
    return row


def _labels(labels: str | None, label_ids: str | None, ids: list[str]):
    if labels is None:
        return None
    if label_ids is None:
        raise UserError("--labels needs --label-ids (test_ids.csv: id[,family] per row of the labels)")
    table = pd.read_csv(label_ids, dtype={"id": str})
    truth_all = np.load(labels, mmap_mode="r")
    if len(table) != len(truth_all):
        raise UserError(f"{labels}: {len(truth_all)} maps but {label_ids} lists {len(table)} ids")
    position = {i: k for k, i in enumerate(table["id"])}
    missing = [i for i in ids if i not in position]
    if missing:
        raise UserError(f"{label_ids}: no label for {len(missing)} predicted ids, e.g. {missing[:3]}")
    rows = [position[i] for i in ids]
    families = table["family"].to_numpy()[rows] if "family" in table else np.asarray(["all"] * len(ids))
    return np.asarray(truth_all[rows], dtype=np.float32), families


def _finetune(
    run_dir: Path, extra_roots: list[Path], name: str, minutes: float, epochs: int, lr_scale: float, repeat: int, progress: bool
) -> Path:
    from kagglekit.engine.fit import fit
    from kagglekit.engine.runs import run_dir_for
    from kagglekit.fwi.data.datasets import ConvertedFolder

    cfg = load_config(run_dir / "config.yaml")
    counts = cfg.data.repeats or [1] * len(cfg.data.folders)
    # older rounds' pseudo-labels go: this round's replace them
    kept = [
        (root, count)
        for root, count in zip(cfg.data.folders, counts, strict=True)
        if (ConvertedFolder(root).generated or {}).get("kind") != "pseudo"
    ]
    roots = [r for r, _ in kept] + [str(r) for r in extra_roots]
    repeats = [c for _, c in kept] + [repeat] * len(extra_roots)
    overrides = [
        f"name={name}",
        f"out_dir={run_dir.parent.parent}",
        f"data.roots=[{','.join(roots)}]",
        f"data.repeats=[{','.join(map(str, repeats))}]",
        f"model.pretrained={run_dir / 'best.pt'}",
        f"train.max_minutes={minutes}",
        f"train.epochs={epochs}",
        f"train.lr={cfg.train.lr * lr_scale}",
        "train.warmup_epochs=0",
    ]
    cfg = load_config(run_dir / "config.yaml", overrides)
    target = run_dir_for(cfg, _fold_of(run_dir))
    if (target / "config.yaml").is_file() and load_config(target / "config.yaml") != cfg:
        raise UserError(f"{target}: holds a fine-tuning run with other settings; remove it or pass another --name")
    return fit(cfg, _fold_of(run_dir), resume=True, progress=progress)


def pseudo_label_round(
    run_dir: str | Path,
    test_dir: str | Path,
    out: str | Path,
    *,
    refine_minutes: float = 0.0,
    finetune_minutes: float = 3.0,
    epochs: int = 20,
    lr_scale: float = 0.3,
    control: bool = False,
    pseudo_repeat: int = 1,
    name: str | None = None,
    labels: str | None = None,
    label_ids: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Run one round; returns (and writes to OUT/round.json and OUT/round.md) the report."""
    from kagglekit.fwi.predict import predict_runs
    from kagglekit.fwi.refine import refine_file

    run_dir, test_dir, out = Path(run_dir), Path(test_dir), Path(out)
    _fold_of(run_dir)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_name = load_config(run_dir / "config.yaml").name

    before = predict_runs([run_dir], test_dir, out / "before", device=dev, progress=progress)[run_name]
    ids = read_ids(out / "before" / "ids.txt")
    truth = _labels(labels, label_ids, ids)
    report = {"run": str(run_dir), "test_dir": str(test_dir), "before": _score(before, ids, test_dir, out, "before", truth, dev)}

    labels_path = before
    if refine_minutes > 0:
        refined = refine_file(
            before, out / "before" / "ids.txt", test_dir, out / "refined", budget_minutes=refine_minutes, device=dev
        )
        labels_path = refined / "refined.npy"
        report["refined"] = _score(labels_path, ids, test_dir, out, "refined", truth, dev)
    pseudo = write_pseudo_folder(np.load(labels_path), ids, out / "pseudo", device=dev, progress=progress)

    variants = {"pseudo": [pseudo]} | ({"control": []} if control else {})
    for variant, extra in variants.items():
        new_name = (name or next_round_name(run_name)) + ("" if variant == "pseudo" else "_control")
        new_run = _finetune(run_dir, extra, new_name, finetune_minutes, epochs, lr_scale, pseudo_repeat, progress)
        pred = predict_runs([new_run], test_dir, out / variant, device=dev, progress=progress)[new_name]
        report[variant] = {"run": str(new_run), **_score(pred, ids, test_dir, out, variant, truth, dev)}
    atomic_write_text(out / "round.json", json.dumps(report, indent=1))
    atomic_write_text(out / "round.md", round_table(report) + "\n")
    return report


def round_table(report: dict) -> str:
    stages = [s for s in ("before", "refined", "pseudo", "control") if s in report]
    names = {
        "before": "the run",
        "refined": "refined labels",
        "pseudo": "fine-tuned + pseudo",
        "control": "fine-tuned, no pseudo",
    }
    rows = []
    for s in stages:
        r = report[s]
        rows.append((names[s], f"{r['misfit_mean']:.4f}", f"{r['misfit_median']:.4f}", f"{r['mae']:.1f}" if "mae" in r else "-"))
    return markdown_table(["test predictions of", "mean misfit", "median misfit", "test MAE"], rows)
