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
import torch

from kagglekit.engine.runs import RunFolder
from kagglekit.errors import UserError
from kagglekit.fwi.augment.folder import GeneratedRows, format_origin, write_generated_folder
from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.metrics import mae_table
from kagglekit.fwi.predictions import Predictions
from kagglekit.io import atomic_write_text
from kagglekit.report import markdown_table


def _fold_of(run_dir: Path) -> int:

    folder = RunFolder(run_dir)
    if not folder.has_fold_name or not folder.best.is_file():
        raise UserError(f"{run_dir}: not a finished run folder (expected <out_dir>/<config>/fold<k>/best.pt)")
    return folder.fold


def next_round_name(name: str) -> str:
    """'unet' -> 'unet_pl1', 'unet_pl1' -> 'unet_pl2'."""
    match = re.fullmatch(r"(.*)_pl(\d+)", name)
    return f"{match.group(1)}_pl{int(match.group(2)) + 1}" if match else f"{name}_pl1"


def write_pseudo_folder(pred: Predictions, out: Path, *, device: str = "cpu", batch: int = 32, progress: bool = True) -> Path:
    """(N, 70, 70) predicted maps -> a generated folder of (simulate(map), map) rows, origin pseudo:<id>."""
    from kagglekit.fwi.augment.augment import simulate_maps

    maps = np.clip(pred.float32(), VMIN, VMAX)  # (N, 70, 70)
    ids = pred.ids
    digest = hashlib.sha256(maps.tobytes()).hexdigest()[:16]
    plan = {"kind": "pseudo", "version": 1, "maps": digest, "ids": len(ids)}
    shard_size = 256

    def make_shard(shard: int, n: int) -> GeneratedRows:
        v = maps[shard * shard_size : shard * shard_size + n]
        seismic, _ = simulate_maps(v, device=device, batch=batch)
        origins = [format_origin("pseudo", [i]) for i in ids[shard * shard_size : shard * shard_size + n]]
        return GeneratedRows(v, seismic, ["pseudo"] * n, origins)

    return write_generated_folder(out, plan, len(maps), shard_size, make_shard, progress=progress, desc="pseudo pairs")


def _score(pred: Predictions, test_dir: Path, work: Path, tag: str, labels, device: str) -> dict:
    """Misfit (cached in work/misfit_<tag>.csv, keyed by the maps' content) and, with labels, the MAE."""
    from kagglekit.fwi.data.readers import TestFolder
    from kagglekit.fwi.refine import start_misfits

    misfit = start_misfits(pred, TestFolder(test_dir), work / f"misfit_{tag}.csv", device=device, progress=False, reuse=True)
    row = {"misfit_mean": float(misfit.mean()), "misfit_median": float(misfit.median())}
    if labels is not None:
        truth, families = labels
        row.update(
            {
                f"mae/{k}" if k not in ("mae", "mae_all_columns") else k: v
                for k, v in mae_table(pred.float32(), truth, families).items()
            }
        )
    return row


def _read_labels(labels: str | None, label_ids: str | None):
    """(maps, ids, families) of --labels / --label-ids, checked like `fwi score` (before any work)."""
    if labels is None:
        return None
    if label_ids is None:
        raise UserError("--labels needs --label-ids (test_ids.csv: id[,family] per row of the labels)")
    from kagglekit.fwi.submission.score import read_labels

    return read_labels(labels, label_ids)


def _labels(read, label_ids: str | None, ids: list[str]):
    """The labels of the predicted `ids`, in their order: (N, 70, 70) float32, (N,) families."""
    if read is None:
        return None
    truth_all, label_order, families = read
    position = {i: k for k, i in enumerate(label_order)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise UserError(f"{label_ids}: no label for {len(missing)} predicted ids, e.g. {missing[:3]}")
    rows = [position[i] for i in ids]
    fam = np.asarray(families)[rows] if families is not None else np.asarray(["all"] * len(ids))
    return np.asarray(truth_all[rows], dtype=np.float32), fam


def _finetune(
    run_dir: Path, extra_roots: list[Path], name: str, minutes: float, epochs: int, lr_scale: float, repeat: int, progress: bool
) -> Path:
    from kagglekit.engine.fit import fit
    from kagglekit.fwi.data.datasets import ConvertedFolder

    cfg = RunFolder(run_dir).config()
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
        f"model.pretrained={RunFolder(run_dir).best}",
        f"train.max_minutes={minutes}",
        f"train.epochs={epochs}",
        f"train.lr={cfg.train.lr * lr_scale}",
        "train.warmup_epochs=0",
    ]
    cfg = RunFolder(run_dir).config(overrides)
    target = RunFolder.of(cfg, _fold_of(run_dir))
    if target.config_path.is_file() and target.config() != cfg:
        raise UserError(f"{target}: holds a fine-tuning run with other settings; remove it or pass another --name")
    return fit(cfg, _fold_of(run_dir), resume=True, progress=progress)


def _claim_round_folder(out: Path, run_dir: Path, test_dir: Path) -> None:
    """OUT/round-source.json names the run and test folder a round folder belongs to; a rerun of
    the same round continues, another run or test set is refused before anything is overwritten."""
    source = {"run": str(run_dir.resolve()), "test_dir": str(test_dir.resolve())}
    marker = out / "round-source.json"
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found != source:
            raise UserError(
                f"{out}: holds the round of {found.get('run')} on {found.get('test_dir')}, not of {source['run']} "
                f"on {source['test_dir']}; choose another --out"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out}: not empty and not a pseudo-label round folder; choose another --out")
    atomic_write_text(marker, json.dumps(source, indent=1) + "\n")


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
    from kagglekit.fwi.refine import prediction_digest, refine_predictions

    run_dir, test_dir, out = Path(run_dir), Path(test_dir), Path(out)
    _fold_of(run_dir)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_name = RunFolder(run_dir).config().name
    label_maps = _read_labels(labels, label_ids)  # a bad labels file fails before any work
    _claim_round_folder(out, run_dir, test_dir)

    before = Predictions.read(predict_runs([run_dir], test_dir, out / "before", device=dev, progress=progress)[run_name])
    truth = _labels(label_maps, label_ids, before.ids)
    report = {"run": str(run_dir), "test_dir": str(test_dir), "before": _score(before, test_dir, out, "before", truth, dev)}

    pseudo_labels = before
    if refine_minutes > 0:
        # a finished refinement step is not repeated on a rerun (a cut one continues with a new budget)
        step, marker = {"before": prediction_digest(before), "minutes": refine_minutes}, out / "refined.json"
        if marker.is_file() and json.loads(marker.read_text()) == step:
            pseudo_labels = Predictions.read(out / "refined" / "refined.npy")
        else:
            pseudo_labels = refine_predictions(
                before, test_dir, out / "refined", minutes=refine_minutes, device=dev, progress=progress
            )
            atomic_write_text(marker, json.dumps(step))
        report["refined"] = _score(pseudo_labels, test_dir, out, "refined", truth, dev)
    pseudo = write_pseudo_folder(pseudo_labels, out / "pseudo", device=dev, progress=progress)

    variants = {"pseudo": [pseudo]} | ({"control": []} if control else {})
    for variant, extra in variants.items():
        new_name = (name or next_round_name(run_name)) + ("" if variant == "pseudo" else "_control")
        new_run = _finetune(run_dir, extra, new_name, finetune_minutes, epochs, lr_scale, pseudo_repeat, progress)
        pred = Predictions.read(predict_runs([new_run], test_dir, out / variant, device=dev, progress=progress)[new_name])
        report[variant] = {"run": str(new_run), **_score(pred, test_dir, out, variant, truth, dev)}
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
