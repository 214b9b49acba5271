"""Image classification as an engine task: k-fold over the official train split (stratified by
class, same fold machinery as FWI), the official test split kept for testing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, f1_score
from torch.utils.data import Dataset

from kagglekit.fwi.data.folds import HOLDOUT, assign_folds
from kagglekit.registry import TASKS
from kagglekit.vision.sources import ImageSource, VisionDataError, load_source
from kagglekit.vision.transforms import build_transform, to_tensor


class VisionDataset(Dataset):
    """Items: image (C, H, W) float32, label, index into the source."""

    def __init__(self, source: ImageSource, indices: np.ndarray, transform):
        self.source, self.indices, self.transform = source, np.asarray(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = int(self.indices[i])
        image = self.transform(image=self.source.image(k))["image"]
        return {"image": to_tensor(image), "label": torch.tensor(self.source.labels[k]), "index": torch.tensor(k)}


def fold_assignment(source: ImageSource, cfg) -> np.ndarray:
    """Fold per item: -2 for the official test split, -1 holdout, 0..k-1 otherwise."""
    folds = np.full(len(source), -2, dtype=np.int64)
    pool = np.flatnonzero(source.splits != "test")
    if cfg.val_split_as_fold:
        folds[pool] = np.where(source.splits[pool] == "val", 0, 1)
        return folds
    folds[pool] = assign_folds(source.labels[pool].astype(str), n_folds=cfg.n_folds, seed=cfg.fold_seed, holdout=cfg.holdout)
    return folds


@TASKS.register("vision")
class VisionTask:
    primary_metric = "accuracy"
    greater_is_better = True
    eval_keys = ("label", "index")

    def __init__(self, cfg):
        self.cfg = cfg
        self.source = load_source(cfg.data)
        self.folds = fold_assignment(self.source, cfg.data)

    def datasets(self, fold: int):
        data = self.cfg.data
        valid_folds = sorted(set(self.folds[self.folds >= 0].tolist()))
        if fold == HOLDOUT:
            train_idx, valid_idx = np.flatnonzero(self.folds >= 0), np.flatnonzero(self.folds == HOLDOUT)
        elif fold in valid_folds:
            train_idx = np.flatnonzero((self.folds >= 0) & (self.folds != fold))
            valid_idx = np.flatnonzero(self.folds == fold)
        else:
            raise VisionDataError(f"{self.source.name}: fold {fold} not found; folds are {valid_folds} (or -1)")
        if data.max_train_samples and data.max_train_samples < len(train_idx):
            train_idx = np.sort(np.random.default_rng(self.cfg.train.seed).choice(train_idx, data.max_train_samples, replace=False))
        seed = self.cfg.train.seed
        train = VisionDataset(self.source, train_idx, build_transform(data, train=True, seed=seed))
        valid = VisionDataset(self.source, valid_idx, build_transform(data, train=False, seed=seed)) if len(valid_idx) else None
        return train, valid

    def test_dataset(self) -> VisionDataset:
        return VisionDataset(self.source, np.flatnonzero(self.folds == -2), build_transform(self.cfg.data, train=False, seed=0))

    def build_model(self) -> torch.nn.Module:
        import kagglekit.vision.models  # noqa: F401  (registration)
        from kagglekit.fwi.models.common import load_pretrained
        from kagglekit.vision.models import build_classifier
        from kagglekit.vision.quant import apply_qat

        kwargs = dict(self.cfg.model.kwargs)
        if self.cfg.model.name == "alexnet":
            kwargs.setdefault("image_size", self.cfg.data.image_size or self.source.image(0).shape[0])
        model = build_classifier(self.cfg.model.name, self.source.channels, len(self.source.classes), kwargs)
        if self.cfg.model.pretrained:
            load_pretrained(model, self.cfg.model.pretrained)
        if self.cfg.model.qat_bits:
            apply_qat(model, self.cfg.model.qat_bits)
        return model

    def forward(self, model, batch):
        logits = model(batch["image"])  # (B, C)
        if self.cfg.data.tta_flip and not model.training:
            logits = 0.5 * (logits + model(batch["image"].flip(-1)))
        return logits

    def loss(self, output, batch):
        return {"loss": F.cross_entropy(output.float(), batch["label"], label_smoothing=self.cfg.train.label_smoothing)}

    def evaluate(self, outputs, keys) -> dict[str, float]:
        y = keys["label"].numpy()
        pred = outputs.argmax(1).numpy()
        return {
            "accuracy": float((pred == y).mean()),
            "macro_f1": float(f1_score(y, pred, average="macro")),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "nll": float(F.cross_entropy(outputs.float(), keys["label"])),
        }

    def oof(self, outputs, keys):
        idx = keys["index"].numpy()
        frame = pd.DataFrame({"index": idx, "id": [self.source.ids[i] for i in idx], "label": keys["label"].numpy()})
        return outputs.numpy().astype(np.float32), frame

    def report(self, metrics: dict[str, float]) -> str:
        return "\n".join(["| metric | value |", "|---|---:|"] + [f"| {k} | {v:.4f} |" for k, v in metrics.items()])

    def after_fit(self, run_dir: Path) -> None:
        """Temperature scaling on the validation (out-of-fold) logits; saved with the model."""
        from kagglekit.engine.checkpoint import load_checkpoint, save_checkpoint
        from kagglekit.io import atomic_write_text
        from kagglekit.vision.calibration import calibration_report

        if not (run_dir / "oof.npy").is_file():
            return
        logits = torch.from_numpy(np.load(run_dir / "oof.npy")).float()
        labels = torch.tensor(pd.read_csv(run_dir / "oof_ids.csv")["label"].to_numpy())
        report = calibration_report(logits, labels)
        atomic_write_text(run_dir / "calibration.json", json.dumps(report, indent=1))
        best = load_checkpoint(run_dir / "best.pt")
        best["temperature"] = report["temperature"]
        save_checkpoint(best, run_dir / "best.pt")
        print(f"[kagglekit] temperature {report['temperature']:.3f}: NLL {report['nll_before']:.4f} -> {report['nll_after']:.4f}, "
              f"ECE {report['ece_before']:.4f} -> {report['ece_after']:.4f}")
