"""What the kernels run on Kaggle, one call each, once the code dataset's wheels are installed.

- `fwi_submission`: predict the competition's test set with every staged run (flip TTA), blend the
  configs with the code of `kagglekit fwi ensemble` (the staged ensemble.json, else the mean),
  optionally refine within a time budget (`kagglekit.fwi.refine`, where this kagglekit has it),
  write and validate working/submission.csv;
- `fwi_training`: train one fold of a config under torchrun on every GPU, a number of epochs per
  Kaggle session (`train --stop-after`), continuing from the kernel's earlier output (`--resume`);
- `vision_submission`: class probabilities of the staged vision runs (flip TTA where the task
  allows it, temperature-scaled, averaged) for a competition laid out as a train CSV, image
  folders and a sample submission -> working/submission.csv.

Inputs are found under either mount layout (`kagglekit.kaggle.paths`). Intermediate arrays live
in a temporary folder outside working/ (whose files become the kernel's output) and are deleted.
Nothing here imports deepwave, matplotlib or `kaggle`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kagglekit.io import atomic_save_npy, atomic_write_text, write_ids
from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.paths import find_input, find_weights, kaggle_root
from kagglekit.kaggle.stage import WEIGHTS_KIND, read_manifest


def _log(message: str) -> None:
    print(f"[kagglekit] {message}", flush=True)


def staged_runs(weights_dir: Path, into: Path, task: str) -> list[Path]:
    """Run folders `<config>/<fold>/` (config.yaml and best.pt linked to the staged files) of a
    `kaggle stage-weights` folder, checked against its manifest (an incomplete upload fails here)."""
    manifest = read_manifest(weights_dir)
    if manifest["kind"] != WEIGHTS_KIND or manifest.get("task") != task:
        raise KaggleError(
            f"{weights_dir}: expected staged '{task}' weights, found {manifest['kind']} of task {manifest.get('task')!r}"
        )
    runs = []
    for entry in manifest["runs"]:
        run = into / entry["config"] / entry["fold"]
        run.mkdir(parents=True)
        for name, link in ((entry["weights"], "best.pt"), (entry["config_file"], "config.yaml")):
            src, size = weights_dir / name, manifest["files"][name]["bytes"]
            if not src.is_file() or src.stat().st_size != size:
                raise KaggleError(
                    f"{src}: missing or not the {size} bytes staged; the upload is incomplete, publish the weights again"
                )
            (run / link).symlink_to(src)
        runs.append(run)
    return runs


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _workers(num_workers: int | None) -> int:
    return num_workers if num_workers is not None else min(4, os.cpu_count() or 1)


def _refine(
    blend: np.ndarray, ids: list[str], test_dir: Path, work: Path, minutes: float, device: str
) -> tuple[np.ndarray, list[str], str]:
    """The blend refined by `kagglekit.fwi.refine` within `minutes` (refined.npy keeps the ids' order)."""
    from kagglekit.fwi.refine import refine_file

    atomic_save_npy(work / "blend.npy", blend.astype(np.float32))
    write_ids(work / "ids.txt", ids)
    out = refine_file(work / "blend.npy", work / "ids.txt", test_dir, work / "out", budget_minutes=minutes, device=device)
    return np.load(out / "refined.npy").astype(np.float32), ids, f"refined within {minutes} min"


def fwi_submission(
    weights: str,
    competition: str = "waveform-inversion",
    root: str | os.PathLike | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    tta: bool = True,
    refine_minutes: float = 0.0,
    device: str | None = None,
) -> Path:
    """Staged runs -> working/submission.csv of the waveform-inversion competition (validated)."""
    t0 = time.perf_counter()
    root = kaggle_root(root)
    comp = find_input("competition", competition, "sample_submission.csv", root)  # inputs first: fail before heavy imports
    staged = find_weights(weights, root=root)
    from kagglekit.fwi.ensemble import blend_config_predictions
    from kagglekit.fwi.predict import predict_runs
    from kagglekit.fwi.submission import SubmissionError, read_sample_submission, validate_submission, write_submission

    dev = _device(device)
    with tempfile.TemporaryDirectory(prefix="kagglekit-") as tmp:
        runs = staged_runs(staged, Path(tmp) / "runs", "fwi")
        _log(f"{len(runs)} runs from {staged}, test files from {comp / 'test'}, device {dev}")
        pred = Path(tmp) / "pred"
        predict_runs(
            runs, comp / "test", pred, tta_flip=tta, batch_size=batch_size, num_workers=_workers(num_workers), device=dev
        )
        t_pred = time.perf_counter()
        configs = sorted({run.parent.name for run in runs})
        blend_file = staged / "ensemble.json"
        blend, ids = blend_config_predictions(pred, configs, blend_file if blend_file.is_file() else None)
        how = f"blend of {configs} by {'ensemble.json' if blend_file.is_file() else 'mean'}"
        if refine_minutes > 0:
            (Path(tmp) / "refine").mkdir()
            blend, ids, refined = _refine(blend, ids, comp / "test", Path(tmp) / "refine", refine_minutes, dev)
            how += f", {refined}"
        sample = read_sample_submission(comp / "sample_submission.csv")
        out = write_submission(blend, ids, sample, root / "working" / "submission.csv")
        del blend
    problems = validate_submission(out, sample)
    if problems:
        raise SubmissionError(f"the written submission {out} is invalid: " + "; ".join(map(str, problems)))
    _log(
        f"wrote and validated {out}: {len(ids)} test ids, {how}, flip TTA {'on' if tta else 'off'}; "
        f"prediction {t_pred - t0:.0f} s, total {time.perf_counter() - t0:.0f} s"
    )
    return out


def _metrics(run_dir: Path) -> list[dict]:
    log = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


def _epochs_done(run_dir: Path) -> int:
    """Epochs a run folder has finished (its metrics.jsonl), 0 for none."""
    return max((record["epoch"] for record in _metrics(run_dir)), default=0)


def _budget_spent(run_dir: Path) -> bool:
    """Whether the run ended early on its time budget (train.max_minutes)."""
    records = _metrics(run_dir)
    return bool(records and records[-1].get("budget_spent"))


def fwi_training(
    data: str,
    config_name: str,
    config_yaml: str,
    fold: int = 0,
    epochs_per_session: int | None = None,
    previous: str | None = None,
    root: str | os.PathLike | None = None,
    nproc: int | None = None,
) -> Path:
    """Train `fold` of the config `config_yaml` on the converted data of the dataset `data` into
    working/runs/<config>/<fold>/, at most `epochs_per_session` epochs now; with `previous` (this
    kernel's earlier output attached as a kernel source) the run continues where it stopped."""
    root = kaggle_root(root)
    converted = find_input("dataset", data, "index.csv", root)  # inputs first: fail before heavy imports
    import torch
    import yaml

    from kagglekit.config import config_from_dict

    out_dir = root / "working" / "runs"
    fold_dir = "full" if fold == -1 else f"fold{fold}"
    run_dir = out_dir / config_name / fold_dir
    if previous and not (run_dir / "last.pt").exists():
        earlier = find_input("kernel", previous, f"runs/{config_name}/{fold_dir}/last.pt", root)
        shutil.copytree(earlier / "runs" / config_name / fold_dir, run_dir)  # inputs are read-only: continue in working/
        _log(f"continuing {earlier / 'runs' / config_name / fold_dir} in {run_dir}")
    cfg = config_from_dict({"name": config_name, **yaml.safe_load(config_yaml)}, source=f"{config_name} (kernel)")
    before = _epochs_done(run_dir)
    stop = ["--stop-after", str(before + epochs_per_session)] if epochs_per_session else []
    gpus = nproc if nproc is not None else torch.cuda.device_count()
    with tempfile.TemporaryDirectory(prefix="kagglekit-") as tmp:
        config_path = Path(tmp) / f"{config_name}.yaml"
        config_path.write_text(config_yaml)
        overrides = [f"name={config_name}", f"data.root={converted}", f"out_dir={out_dir}"]
        args = ["train", str(config_path), *overrides, "--fold", str(fold), "--resume", *stop]
        if gpus > 1:  # one process per GPU
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={gpus}",
                "-m",
                "kagglekit.cli",
                *args,
            ]
            _log("$ " + " ".join(cmd))
            code = subprocess.run(cmd).returncode
        else:
            from kagglekit.cli import main

            _log("kagglekit " + " ".join(args))
            code = main(args)
    if code != 0:
        raise KaggleError(f"training {config_name} fold {fold} failed (exit {code}); its log is above")
    done = _epochs_done(run_dir)
    finished = done >= cfg.train.epochs or _budget_spent(run_dir)
    status = {"config": config_name, "fold": fold, "epochs_done": done, "epochs": cfg.train.epochs, "finished": finished}
    atomic_write_text(root / "working" / "kagglekit-training.json", json.dumps(status, indent=1) + "\n")
    if finished:
        _log(f"{config_name} {fold_dir} finished ({done} epochs): stage its weights from this kernel's output")
    else:
        _log(
            f"{config_name} {fold_dir}: epochs {before + 1}-{done} of {cfg.train.epochs} done; render with --resume-from and push again"
        )
    return run_dir


def _vision_probs(run_dir: Path, overrides: list[str], tta: bool, batch_size: int, device: str, workers: int):
    """(probabilities (N, classes), test ids, class names) of one vision run on the kernel's data."""
    import torch
    from torch.utils.data import DataLoader

    from kagglekit.config import load_config
    from kagglekit.engine.checkpoint import load_checkpoint
    from kagglekit.engine.task import build_task
    from kagglekit.engine.tta import predict_batch

    cfg = load_config(run_dir / "config.yaml", overrides)
    task = build_task(cfg)
    best = load_checkpoint(run_dir / "best.pt", required=("model",))
    model = task.build_model()
    model.load_state_dict(best["model"])
    model.to(device).eval()
    test = task.test_dataset()
    temperature = float(best.get("temperature", 1.0))
    probs = []
    with torch.no_grad():
        for batch in DataLoader(test, batch_size=batch_size, num_workers=workers):
            batch = {k: v.to(device) for k, v in batch.items()}
            probs.append(torch.softmax(predict_batch(task, model, batch, tta) / temperature, dim=1).cpu())
    ids = [task.source.ids[i] for i in test.indices]
    return torch.cat(probs).numpy(), ids, list(task.source.classes)


def vision_submission(
    weights: str,
    competition: str,
    root: str | os.PathLike | None = None,
    train_csv: str = "train.csv",
    train_images: str = "train_images",
    test_images: str = "test_images",
    sample_submission: str = "sample_submission.csv",
    batch_size: int = 128,
    num_workers: int | None = None,
    tta: bool = True,
    device: str | None = None,
) -> Path:
    """Staged vision runs -> working/submission.csv (the sample submission's columns and row order).

    The runs must have been trained on this competition's data as a `folder` dataset (classes are
    the sorted labels of `train_csv`); here its train and test images become one such folder.
    """
    import pandas as pd

    root = kaggle_root(root)
    comp = find_input("competition", competition, sample_submission, root)
    staged = find_weights(weights, root=root)
    sample = pd.read_csv(comp / sample_submission, dtype=str)
    train = pd.read_csv(comp / train_csv, dtype=str)
    id_col, label_col = sample.columns[:2]
    if id_col not in train or label_col not in train:
        raise KaggleError(
            f"{comp / train_csv}: expected the columns {id_col},{label_col} of {sample_submission}, found {list(train.columns)}"
        )
    dev = _device(device)
    with tempfile.TemporaryDirectory(prefix="kagglekit-") as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        for folder in (comp / train_images, comp / test_images):
            if not folder.is_dir():
                raise KaggleError(f"{folder}: image folder not found in {comp} (holds {sorted(p.name for p in comp.iterdir())})")
            for path in folder.iterdir():
                (images / path.name).symlink_to(path)
        labels = Path(tmp) / "labels.csv"
        pd.concat(
            [pd.DataFrame({"id": train[id_col], "label": train[label_col]}), pd.DataFrame({"id": sample[id_col], "label": ""})]
        ).to_csv(labels, index=False)
        overrides = ["data.dataset=folder", f"data.root={images}", f"data.labels_csv={labels}"]
        runs = staged_runs(staged, Path(tmp) / "runs", "vision")
        total, ids, classes = None, None, None
        for run in runs:
            probs, run_ids, run_classes = _vision_probs(run, overrides, tta, batch_size, dev, _workers(num_workers))
            if total is None:
                total, ids, classes = probs, run_ids, run_classes
            elif run_ids != ids or run_classes != classes:
                raise KaggleError(f"{run}: its test ids or classes differ from the first run's")
            else:
                total = total + probs
    predicted = pd.Series([classes[k] for k in total.argmax(1)], index=ids)
    missing = sorted(set(sample[id_col]) - set(ids))
    if missing:
        raise KaggleError(f"{comp / sample_submission}: {len(missing)} ids have no test image, e.g. {missing[:3]}")
    frame = pd.DataFrame({id_col: sample[id_col], label_col: predicted.loc[sample[id_col]].to_numpy()})
    out = root / "working" / "submission.csv"
    atomic_write_text(out, frame.to_csv(index=False))
    _log(f"wrote {out}: {len(frame)} rows, {len(runs)} runs averaged, classes {classes}")
    return out
