"""Image classification as an engine task: k-fold over the official train split (stratified by
class), the official test split kept out of every fold for testing."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from kagglekit.errors import UserError
from kagglekit.folds import EXCLUDED, assign_folds, fold_signature, split_for_fold
from kagglekit.log import logger
from kagglekit.losses import LOSSES
from kagglekit.pretrained import load_pretrained
from kagglekit.report import markdown_table
from kagglekit.vision.metrics import classification_metrics
from kagglekit.vision.models import build_classifier
from kagglekit.vision.quant import apply_qat
from kagglekit.vision.sources import ImageSource, load_source
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
    """Fold per item: EXCLUDED for the official test split, HOLDOUT (-1) for the holdout, 0..k-1 otherwise."""
    folds = np.full(len(source), EXCLUDED, dtype=np.int64)
    pool = np.flatnonzero(source.splits != "test")
    if cfg.val_split_as_fold:
        folds[pool] = np.where(source.splits[pool] == "val", 0, 1)
        return folds
    folds[pool] = assign_folds(source.labels[pool], n_folds=cfg.n_folds, seed=cfg.fold_seed, holdout=cfg.holdout)
    return folds


class VisionTask:
    primary_metric = "accuracy"
    greater_is_better = True
    eval_keys = ("label", "index")

    def __init__(self, cfg):
        self.cfg = cfg
        if cfg.train.loss != "cross_entropy":
            raise UserError(f"vision trains with train.loss=cross_entropy, found {cfg.train.loss!r}")
        self.loss_fn = LOSSES.build("cross_entropy", label_smoothing=cfg.train.label_smoothing)

    @functools.cached_property
    def source(self) -> ImageSource:
        return load_source(self.cfg.data)

    @functools.cached_property
    def folds(self) -> np.ndarray:
        return fold_assignment(self.source, self.cfg.data)

    def datasets(self, fold: int):
        data = self.cfg.data
        train_idx, valid_idx = split_for_fold(self.folds, fold, where=self.source.name)
        if data.max_train_samples and data.max_train_samples < len(train_idx):
            train_idx = np.sort(
                np.random.default_rng(self.cfg.train.seed).choice(train_idx, data.max_train_samples, replace=False)
            )
        seed = self.cfg.train.seed
        train = VisionDataset(self.source, train_idx, build_transform(data, train=True, seed=seed))
        valid = VisionDataset(self.source, valid_idx, build_transform(data, train=False, seed=seed)) if len(valid_idx) else None
        return train, valid

    def fold_signature(self) -> str:
        return fold_signature(self.source.ids, self.folds)

    def test_dataset(self) -> VisionDataset:
        return VisionDataset(
            self.source, np.flatnonzero(self.folds == EXCLUDED), build_transform(self.cfg.data, train=False, seed=0)
        )

    def build_model(self) -> torch.nn.Module:
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
        return model(batch["image"])  # (B, C, H, W) -> (B, classes) logits

    @property
    def flip_tta_valid(self) -> bool:
        return self.cfg.data.flip_invariant

    def flip_input(self, batch):
        return {**batch, "image": batch["image"].flip(-1)}

    def flip_output(self, output):
        return output  # class logits do not move with the image

    def loss(self, output, batch):
        return {"loss": self.loss_fn(output, batch["label"])}

    def evaluate(self, outputs, keys) -> dict[str, float]:
        return classification_metrics(torch.softmax(outputs.float(), dim=1).numpy(), keys["label"].numpy())

    def oof(self, outputs, keys):
        idx = keys["index"].numpy()
        frame = pd.DataFrame({"index": idx, "id": [self.source.ids[i] for i in idx], "label": keys["label"].numpy()})
        return outputs.numpy().astype(np.float32), frame

    def report(self, metrics: dict[str, float]) -> str:
        return markdown_table(["metric", "value"], list(metrics.items()), digits=4)

    def after_fit(self, run_dir: Path) -> None:
        """Temperature scaling on the validation (out-of-fold) logits; saved with the model."""
        from kagglekit.engine.checkpoint import load_checkpoint, save_checkpoint
        from kagglekit.engine.runs import RunFolder
        from kagglekit.io import atomic_write_text
        from kagglekit.vision.calibration import calibration_report

        run = RunFolder(run_dir)
        if not run.oof_path.is_file():
            return
        logits = torch.from_numpy(np.load(run.oof_path, allow_pickle=False)).float()
        labels = torch.tensor(pd.read_csv(run.oof_ids_path)["label"].to_numpy())
        report = calibration_report(logits, labels)
        atomic_write_text(run.path / "calibration.json", json.dumps(report, indent=1))
        best = load_checkpoint(run.best)
        best["temperature"] = report["temperature"]
        save_checkpoint(best, run.best)
        logger.info(
            f"temperature {report['temperature']:.3f}: NLL {report['nll_before']:.4f} -> {report['nll_after']:.4f}, "
            f"ECE {report['ece_before']:.4f} -> {report['ece_after']:.4f}"
        )
