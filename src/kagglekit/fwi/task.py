"""Waveform inversion as an engine task: datasets per fold over a converted folder, velocity
models, the loss terms (L1 or another supervised loss; with `physics.weight`, the relative seismic
misfit of the predictions, also on unlabeled test seismic, and cycle consistency), the Kaggle
metric per family, and the physical flip for TTA."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch

from kagglekit.engine.task import ExtraData
from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.data.datasets import FWITestDataset, FWITrainDataset
from kagglekit.fwi.data.flip import flip_seismic, flip_velocity
from kagglekit.fwi.data.training import TrainingData
from kagglekit.fwi.metrics import mae_table
from kagglekit.fwi.models import MODELS
from kagglekit.losses import LOSSES
from kagglekit.pretrained import load_pretrained
from kagglekit.report import markdown_table


class FWITask:
    primary_metric = "mae"
    greater_is_better = False
    eval_keys = ("velocity", "family", "sample_id")

    def __init__(self, cfg):
        self.cfg = cfg
        self.loss_fn = LOSSES.build(cfg.train.loss)

    @functools.cached_property
    def folder(self) -> TrainingData:
        """The training folders as one; opened only when a run needs them (not to rebuild a model)."""
        return TrainingData(self.cfg.data.folders)

    def datasets(self, fold: int):
        data = self.cfg.data
        train_ids, valid_ids = self.folder.split(fold)
        if data.repeats is not None:
            train_ids = self.folder.repeat(train_ids, data.repeats)
        cap = data.max_train_samples
        if cap is not None and cap < len(train_ids):
            train_ids = np.sort(np.random.default_rng(self.cfg.train.seed).choice(train_ids, cap, replace=False))
        train = FWITrainDataset(
            self.folder, train_ids, data.flip_prob, time_scale_prob=data.time_scale_prob, time_scale_range=data.time_scale_range
        )
        if data.simulate is not None:
            train = self._with_simulated(train, train_ids)
        valid = FWITrainDataset(self.folder, valid_ids) if len(valid_ids) else None
        return train, valid

    def _with_simulated(self, train, train_ids: np.ndarray):
        """`train` plus ratio x len(train) on-the-fly pairs whose parents are training rows only."""
        from kagglekit.fwi.data.simulated import MixedDataset, SimulatedDataset
        from kagglekit.fwi.maps import ParentPool

        sim = self.cfg.data.simulate
        where = sim.where
        if where == "auto":
            where = "device" if torch.cuda.is_available() or self.cfg.train.num_workers == 0 else "workers"
        pool = ParentPool(self.folder, train_ids)
        n = max(1, round(sim.ratio * len(train)))
        seed = self.cfg.train.seed if sim.seed is None else sim.seed
        return MixedDataset(train, SimulatedDataset(pool, n, tuple(sim.methods), seed, self.folder.families, where))

    def prepare_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Simulate, on the batch's device in one call, the maps of on-the-fly items marked pending."""
        pending = batch.get("pending")
        if pending is None or not bool(pending.any()):
            return batch
        from kagglekit.fwi.physics import simulate

        with torch.no_grad():
            seismic = simulate(batch["velocity"][pending].float())  # (n, 5, 1000, 70)
        batch["seismic"][pending] = seismic.to(batch["seismic"].dtype)
        return batch

    def fold_signature(self) -> str:
        return self.folder.fold_signature()

    def build_model(self) -> torch.nn.Module:
        model = MODELS.build(self.cfg.model.name, **self.cfg.model.kwargs)
        if self.cfg.model.pretrained:
            load_pretrained(model, self.cfg.model.pretrained)
        return model

    def forward(self, model, batch):
        return model(batch["seismic"])  # (B, 5, 1000, 70) -> (B, 70, 70) m/s

    def flip_input(self, batch):
        return {**batch, "seismic": flip_seismic(batch["seismic"])}

    def flip_output(self, output):
        return flip_velocity(output)

    def loss(self, output, batch):
        return {"loss": self.loss_fn(output, batch["velocity"])}

    def physics_weight(self, progress: float) -> float:
        """physics.weight, ramped linearly over the first physics.warmup of training progress (0 -> 1)."""
        physics = self.cfg.physics
        ramp = 1.0 if physics.warmup == 0 else min(1.0, progress / physics.warmup)
        return physics.weight * ramp

    @staticmethod
    def misfit_term(output: torch.Tensor, seismic: torch.Tensor) -> torch.Tensor:
        """Mean relative misfit of predicted maps (n, 70, 70) against their own input seismic
        (n, 5, 1000, 70), never the label; float32 outside autocast (the simulator runs at full precision)."""
        from kagglekit.fwi.physics.misfit import relative_misfit

        with torch.autocast(output.device.type, enabled=False):
            return relative_misfit(output.float().clamp(VMIN, VMAX), seismic).mean()

    def train_loss(self, output, batch, progress: float) -> dict[str, torch.Tensor]:
        """The supervised loss plus, with physics.weight > 0, the ramped misfit of the batch's first
        physics.samples predictions: {"loss": total, "supervised", "physics" (unweighted)}."""
        supervised = self.loss(output, batch)["loss"]
        if self.cfg.physics.weight == 0:
            return {"loss": supervised}
        n = self.cfg.physics.samples
        physics = self.misfit_term(output[:n], batch["seismic"][:n])
        return {"loss": supervised + self.physics_weight(progress) * physics, "supervised": supervised, "physics": physics}

    def extra_data(self) -> ExtraData | None:
        """The test seismic of `data.unlabeled` (transductive training), physics.samples per batch."""
        if not self.cfg.data.unlabeled:
            return None
        physics = self.cfg.physics
        return ExtraData("unlabeled", FWITestDataset(self.cfg.data.unlabeled), physics.samples, physics.unlabeled_every)

    def extra_loss(self, model, batch, progress: float) -> dict[str, torch.Tensor]:
        """An unlabeled batch: the ramped misfit of its predictions and, with physics.cycle_weight,
        cycle consistency: the model's prediction from the seismic its own prediction simulates
        should equal that prediction (L1, m/s)."""
        from kagglekit.fwi.physics import simulate
        from kagglekit.fwi.physics.simulate import FAST_PML_WIDTH

        physics = self.cfg.physics
        output = self.forward(model, batch)  # (n, 70, 70)
        terms = {"physics": self.misfit_term(output, batch["seismic"])}
        total = self.physics_weight(progress) * terms["physics"]
        if physics.cycle_weight > 0:
            with torch.autocast(output.device.type, enabled=False):
                velocity = output.detach().float().clamp(VMIN, VMAX)
                resimulated = simulate(velocity, pml_width=FAST_PML_WIDTH)  # (n, 5, 1000, 70)
                terms["cycle"] = (self.forward(model, {"seismic": resimulated}).float() - velocity).abs().mean()
            total = total + physics.cycle_weight * terms["cycle"]
        return {"loss": total, **terms}

    def evaluate(self, outputs: torch.Tensor, keys: dict[str, torch.Tensor]) -> dict[str, float]:
        """The Kaggle metric (odd columns) overall and per family, and the all-columns MAE."""
        names = np.asarray(self.folder.families)[keys["family"].numpy()]
        table = mae_table(outputs.numpy(), keys["velocity"].numpy(), names)
        return {k if k in ("mae", "mae_all_columns") else f"mae/{k}": v for k, v in table.items()}

    def oof(self, outputs, keys):
        ids = keys["sample_id"].numpy()
        frame = pd.DataFrame({"sample_id": ids})
        frame["family"] = self.folder.index["family"].to_numpy()[ids]  # ids are row keys
        return outputs.numpy().astype(np.float16), frame

    def report(self, metrics: dict[str, float]) -> str:
        rows = [(k.split("/", 1)[1], v) for k, v in metrics.items() if k.startswith("mae/")]
        rows.append(("**all** (Kaggle metric)", metrics["mae"]))
        if "mae_all_columns" in metrics:
            rows.append(("all 70 columns", metrics["mae_all_columns"]))
        return markdown_table(["family", "MAE (m/s)"], rows)
