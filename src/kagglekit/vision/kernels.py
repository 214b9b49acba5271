"""The image-classification kernel: what `kagglekit kaggle render-kernel vision-submission` writes and
what it runs on Kaggle (registered in `kagglekit.vision.spec`).

vision-submission: class probabilities of the staged vision runs (flip TTA where the task allows
it, temperature-scaled, averaged) for a competition laid out as a train CSV, image folders and a
sample submission -> working/submission.csv in the sample's columns and row order.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kagglekit.arguments import positive_int
from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.kind import KernelKind, KernelOption
from kagglekit.kaggle.paths import find_input, find_weights, kaggle_root
from kagglekit.kaggle.runtime import loader_workers, log, pick_device, staged_runs


def _probabilities(run, dataset, tta: bool, batch_size: int, device: str, workers: int):
    """(N, classes) softmax(logits / T) of a loaded vision run on `device`, logits flip-averaged with `tta`."""
    import torch
    from torch.utils.data import DataLoader

    from kagglekit.engine.tta import predict_batch
    from kagglekit.vision.predict import temperature

    probs = []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
            batch = {k: v.to(device) for k, v in batch.items()}
            probs.append(torch.softmax(predict_batch(run.task, run.model, batch, tta) / temperature(run), dim=1).cpu())
    return torch.cat(probs).numpy()


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

    from kagglekit.engine.runs import load_run
    from kagglekit.io import atomic_write_text

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
    dev = pick_device(device)
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
        for run_dir in runs:
            run = load_run(run_dir, dev, overrides=overrides)  # best.pt only: starting weights are never loaded
            test = run.task.test_dataset()
            probs = _probabilities(run, test, tta, batch_size, dev, loader_workers(num_workers))  # (N, classes)
            run_ids, run_classes = [run.task.source.ids[i] for i in test.indices], list(run.task.source.classes)
            if total is None:
                total, ids, classes = probs, run_ids, run_classes
            elif run_ids != ids or run_classes != classes:
                raise KaggleError(f"{run_dir}: its test ids or classes differ from the first run's")
            else:
                total = total + probs
    predicted = pd.Series([classes[k] for k in total.argmax(1)], index=ids)
    missing = sorted(set(sample[id_col]) - set(ids))
    if missing:
        raise KaggleError(f"{comp / sample_submission}: {len(missing)} ids have no test image, e.g. {missing[:3]}")
    frame = pd.DataFrame({id_col: sample[id_col], label_col: predicted.loc[sample[id_col]].to_numpy()})
    out = root / "working" / "submission.csv"
    atomic_write_text(out, frame.to_csv(index=False))
    log(f"wrote {out}: {len(frame)} rows, {len(runs)} runs averaged, classes {classes}")
    return out


SUBMISSION = KernelKind(
    name="vision-submission",
    title="kagglekit vision submission",
    summary="an image-classification test set -> /kaggle/working/submission.csv.",
    runtime=vision_submission,
    code_file="submission.py",
    options={
        "weights": KernelOption(
            "{owner}/kagglekit-vision-weights",
            "`kagglekit kaggle stage-weights` output of vision runs (dataset or model)",
            source="weights",
        ),
        "competition": KernelOption(
            "cassava-leaf-disease-classification", "an image-classification competition", source="competition"
        ),
        "batch_size": KernelOption(128, "test images per forward pass", positive_int),
        "train_csv": KernelOption("train.csv", "the competition's id,label CSV of the training images"),
        "train_images": KernelOption("train_images", "the competition's folder of training images"),
        "test_images": KernelOption("test_images", "the competition's folder of test images"),
    },
)

KERNELS = (SUBMISSION,)
