"""Waveform inversion as an engine task: memmap datasets per fold, velocity models, MAE metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from kagglekit.fwi.constants import FAMILIES
from kagglekit.fwi.data.datasets import ConvertedFolder, FWITrainDataset
from kagglekit.fwi.data.folds import HOLDOUT
from kagglekit.fwi.data.readers import DataError
from kagglekit.losses import build_loss
from kagglekit.registry import MODELS, TASKS


@TASKS.register("fwi")
class FWITask:
    primary_metric = "mae"
    greater_is_better = False
    eval_keys = ("velocity", "family", "sample_id")

    def __init__(self, cfg):
        self.cfg = cfg
        self.folder = ConvertedFolder(cfg.data.root)
        self.loss_fn = build_loss(cfg.train.loss)

    def datasets(self, fold: int):
        folds = self.folder.index["fold"].to_numpy()
        ids = self.folder.index["sample_id"].to_numpy()
        valid_folds = sorted(set(folds[folds >= 0].tolist()))
        if fold == HOLDOUT:
            train_mask, valid_mask = folds >= 0, folds == HOLDOUT
        elif fold in valid_folds:
            train_mask, valid_mask = (folds >= 0) & (folds != fold), folds == fold
        else:
            raise DataError(f"{self.folder.root / 'index.csv'}: fold {fold} not found; folds are {valid_folds} (or -1)")
        train_ids = ids[train_mask]
        cap = self.cfg.data.max_train_samples
        if cap is not None and cap < len(train_ids):
            train_ids = np.sort(np.random.default_rng(self.cfg.train.seed).choice(train_ids, cap, replace=False))
        train = FWITrainDataset(self.folder, train_ids, flip_prob=self.cfg.data.flip_prob)
        valid = FWITrainDataset(self.folder, ids[valid_mask], flip_prob=0.0) if valid_mask.any() else None
        return train, valid

    def build_model(self) -> torch.nn.Module:
        import kagglekit.fwi.models  # noqa: F401  (registration)
        from kagglekit.fwi.models import load_pretrained

        model = MODELS.build(self.cfg.model.name, **self.cfg.model.kwargs)
        if self.cfg.model.pretrained:
            load_pretrained(model, self.cfg.model.pretrained)
        return model

    def forward(self, model, batch):
        return model(batch["seismic"])  # (B, 70, 70) m/s

    def loss(self, output, batch):
        return {"loss": self.loss_fn(output, batch["velocity"])}

    def evaluate(self, outputs: torch.Tensor, keys: dict[str, torch.Tensor]) -> dict[str, float]:
        """MAE over all pixels and per family (the competition scores odd columns; the
        difference is negligible for model selection and the full map is what we predict)."""
        err = (outputs.float() - keys["velocity"].float()).abs().mean(dim=(1, 2))  # (N,)
        metrics = {"mae": float(err.mean())}
        for fid in sorted(set(keys["family"].tolist())):
            name = FAMILIES[fid] if 0 <= fid < len(FAMILIES) else f"family{fid}"
            metrics[f"mae/{name}"] = float(err[keys["family"] == fid].mean())
        return metrics

    def oof(self, outputs, keys):
        ids = keys["sample_id"].numpy()
        frame = pd.DataFrame({"sample_id": ids})
        frame["family"] = self.folder.index.set_index("sample_id").loc[ids, "family"].to_numpy()
        return outputs.numpy().astype(np.float16), frame

    def report(self, metrics: dict[str, float]) -> str:
        rows = [(k.split("/", 1)[1], v) for k, v in metrics.items() if k.startswith("mae/")]
        lines = ["| family | MAE (m/s) |", "|---|---:|"]
        lines += [f"| {name} | {value:.1f} |" for name, value in rows]
        lines.append(f"| **all** | **{metrics['mae']:.1f}** |")
        return "\n".join(lines)
