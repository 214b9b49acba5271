"""Vision inference: calibrated, optionally flip-TTA probabilities from run folders, averaged
(probability averaging) across runs; metrics with a confusion-matrix PNG; `id,label` CSVs;
the QAT integer export with its size and accuracy."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from kagglekit.config import load_config  # noqa: E402
from kagglekit.engine.checkpoint import load_checkpoint  # noqa: E402
from kagglekit.engine.task import build_task  # noqa: E402
from kagglekit.io import atomic_path, atomic_write_text  # noqa: E402


def load_run(run_dir: str | Path):
    """(task, model with best weights in eval mode, temperature) of a vision run folder."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    if cfg.task != "vision":
        raise ValueError(f"{run_dir}: not a vision run (task {cfg.task})")
    task = build_task(cfg)
    model = task.build_model()
    best = load_checkpoint(run_dir / "best.pt", required=("model",))
    model.load_state_dict(best["model"])
    return task, model.eval(), float(best.get("temperature", 1.0))


@torch.no_grad()
def predict_probs(task, model, temperature: float, dataset, batch_size: int = 256) -> np.ndarray:
    """(N, classes) probabilities: softmax(logits / T), logits flip-averaged when the config says so."""
    out = []
    for batch in DataLoader(dataset, batch_size=batch_size):
        out.append(torch.softmax(task.forward(model, batch).float() / temperature, dim=1))
    return torch.cat(out).numpy()


def predict_runs(run_dirs: list[str | Path], out_dir: str | Path) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """Mean of the runs' test-split probabilities; writes probs.npy, ids.txt (+ labels.npy)."""
    probs, ids, labels, classes = None, None, None, None
    for run in run_dirs:
        task, model, t = load_run(run)
        test = task.test_dataset()
        p = predict_probs(task, model, t, test)
        run_ids = [task.source.ids[i] for i in test.indices]
        if probs is None:
            probs, ids, labels, classes = p / len(run_dirs), run_ids, task.source.labels[test.indices], task.source.classes
        else:
            if run_ids != ids:
                raise ValueError(f"{run}: its test split differs from the first run's")
            probs += p / len(run_dirs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "probs.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, probs.astype(np.float32))
    atomic_write_text(out_dir / "ids.txt", "\n".join(ids) + "\n")
    if (labels >= 0).all():
        with atomic_path(out_dir / "labels.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, labels)
    atomic_write_text(out_dir / "classes.txt", "\n".join(classes) + "\n")
    return probs, ids, labels, classes


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(1)
    return {
        "accuracy": float((pred == labels).mean()),
        "macro_f1": float(f1_score(labels, pred, average="macro")),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
        "nll": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()),
    }


def plot_confusion(probs: np.ndarray, labels: np.ndarray, classes: list[str], path: str | Path) -> None:
    cm = confusion_matrix(labels, probs.argmax(1), labels=np.arange(len(classes)))
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
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
    plt.close(fig)


def write_classification_csv(probs: np.ndarray, ids: list[str], out: str | Path, classes: list[str] | None = None,
                             sample_submission: str | Path | None = None) -> Path:
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
            raise ValueError(f"{sample_submission}: {len(missing)} ids without predictions, e.g. {sorted(missing)[:3]}")
        frame = frame.set_index("id").loc[sample[id_col]].reset_index()
        frame.columns = [id_col, label_col]
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(out)
