"""Vision inference: calibrated, flip-TTA probabilities from run folders, averaged (probability
averaging) across runs; metrics with a confusion-matrix PNG; `id,label` CSVs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix
from torch.utils.data import DataLoader

from kagglekit.device import resolve_device
from kagglekit.engine.runs import LoadedRun, load_run
from kagglekit.engine.tta import predict_batch, supports_flip
from kagglekit.errors import UserError
from kagglekit.io import atomic_path, atomic_save_npy, atomic_write_text, write_ids
from kagglekit.vision.metrics import classification_metrics


def load_vision_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    run = load_run(run_dir, device)
    if run.cfg.task != "vision":
        raise UserError(f"{run_dir}: a '{run.cfg.task}' run, not a vision run")
    return run


def temperature(run: LoadedRun) -> float:
    return float(run.checkpoint.get("temperature", 1.0))


@torch.no_grad()
def predict_probs(run: LoadedRun, dataset, tta: bool = True, batch_size: int = 256) -> np.ndarray:
    """(N, classes) probabilities: softmax(logits / T), logits flip-averaged with `tta` (on the
    model's device)."""
    device = next(run.model.parameters()).device
    out = []
    for batch in DataLoader(dataset, batch_size=batch_size):
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        logits = predict_batch(run.task, run.model, batch, tta)
        out.append(torch.softmax(logits / temperature(run), dim=1).cpu())
    return torch.cat(out).numpy()


@dataclass
class TestPredictions:
    probs: np.ndarray  # (N, classes), averaged over runs
    ids: list[str]
    labels: np.ndarray  # (N,), -1 where the test split has no labels
    classes: list[str]
    flip_tta: bool  # whether the flipped pass was averaged in


def predict_runs(
    run_dirs: list[str | Path], out_dir: str | Path, tta: bool = True, batch_size: int = 256, device: str | None = "auto"
) -> TestPredictions:
    """Mean of the runs' test-split probabilities; writes probs.npy, ids.txt, classes.txt (+ labels.npy)."""
    device = resolve_device(device)
    result = None
    for run_dir in run_dirs:
        run = load_vision_run(run_dir, device)
        test = run.task.test_dataset()
        p = predict_probs(run, test, tta, batch_size) / len(run_dirs)
        run_ids = [run.task.source.ids[i] for i in test.indices]
        if result is None:
            labels = run.task.source.labels[test.indices]
            result = TestPredictions(p, run_ids, labels, run.task.source.classes, tta and supports_flip(run.task))
        elif run_ids != result.ids:
            raise UserError(f"{run_dir}: its test split differs from the first run's")
        else:
            result.probs += p
    out_dir = Path(out_dir)
    atomic_save_npy(out_dir / "probs.npy", result.probs.astype(np.float32))
    write_ids(out_dir / "ids.txt", result.ids)
    if (result.labels >= 0).all():
        atomic_save_npy(out_dir / "labels.npy", result.labels)
    atomic_write_text(out_dir / "classes.txt", "\n".join(result.classes) + "\n")
    return result


def plot_confusion(probs: np.ndarray, labels: np.ndarray, classes: list[str], path: str | Path) -> None:
    cm = confusion_matrix(labels, probs.argmax(1), labels=np.arange(len(classes)))
    from matplotlib.figure import Figure  # plotting only: inference never imports matplotlib

    fig = Figure(figsize=(1 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
    ax = fig.subplots()
    ax.imshow(cm / cm.sum(1, keepdims=True).clip(min=1), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7, color="black" if i != j else "white")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def write_classification_csv(
    probs: np.ndarray,
    ids: list[str],
    out: str | Path,
    classes: list[str] | None = None,
    sample_submission: str | Path | None = None,
) -> Path:
    """`id,label` (class index, or class name when `classes` is given); column names and row
    order from the sample submission when one is given."""
    labels = probs.argmax(1)
    values = [classes[k] for k in labels] if classes else labels
    frame = pd.DataFrame({"id": ids, "label": values})
    if sample_submission:
        sample = pd.read_csv(sample_submission, dtype=str)
        id_col, label_col = sample.columns[:2]
        missing = set(sample[id_col]) - set(ids)
        if missing:
            raise UserError(f"{sample_submission}: {len(missing)} ids without predictions, e.g. {sorted(missing)[:3]}")
        frame = frame.set_index("id").loc[sample[id_col]].reset_index()
        frame.columns = [id_col, label_col]
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(out)


def predict_to_folder(
    run_dirs: list[str | Path],
    out_dir: str | Path,
    tta: bool = True,
    csv: bool = False,
    sample_submission: str | Path | None = None,
    class_names: bool = False,
    batch_size: int = 256,
    device: str | None = "auto",
) -> str:
    """`vision predict`: probabilities, metrics + confusion PNG when labels are known, and with `csv`
    OUT_DIR/submission.csv; returns the report."""
    pred = predict_runs(run_dirs, out_dir, tta, batch_size, device)
    lines = [
        f"probabilities of {len(pred.ids)} test images ({len(run_dirs)} runs averaged, flip TTA {'on' if pred.flip_tta else 'off'}): "
        f"{Path(out_dir) / 'probs.npy'}"
    ]
    if (pred.labels >= 0).all():
        lines += [f"{k}: {v:.4f}" for k, v in classification_metrics(pred.probs, pred.labels).items()]
        plot_confusion(pred.probs, pred.labels, pred.classes, Path(out_dir) / "confusion.png")
        lines.append(f"wrote {Path(out_dir) / 'confusion.png'}")
    if csv:
        classes = pred.classes if class_names else None
        out_csv = Path(out_dir) / "submission.csv"
        lines.append(f"wrote {write_classification_csv(pred.probs, pred.ids, out_csv, classes, sample_submission)}")
    return "\n".join(lines)
