"""Fresh (seismic, velocity) pairs made while training: no disk, a new set every epoch.

Each item's map is drawn by an augment method (fwi/maps.py) from a generator seeded by
(seed, epoch, index), from the fold's training rows only (never its validation rows), so an epoch
is the same on every rerun and for any number of workers. The map is simulated either
- in the DataLoader worker that reads it (`where: workers`; one map per call, CPU, one simulation
  thread per worker: the workers already use the cores, deepwave's own pool would oversubscribe them), or
- later, on the training device, in one batched call per batch (`where: device`): the item
  carries the map and `pending = True`; FWITask.prepare_batch fills in the seismic.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from kagglekit.fwi.constants import SEISMIC_SHAPE
from kagglekit.fwi.maps import MAP_METHODS, ParentPool, draw_map
from kagglekit.parallel import set_simulation_threads

_THREADS_SET_IN: int | None = None  # the pid whose simulation threads this module has set


def _one_thread_per_worker() -> None:
    """In a DataLoader worker, once per process: deepwave (and torch) on one thread."""
    global _THREADS_SET_IN
    if _THREADS_SET_IN != os.getpid() and get_worker_info() is not None:
        set_simulation_threads(1)
        _THREADS_SET_IN = os.getpid()


class SimulatedDataset(Dataset):
    def __init__(
        self,
        pool: ParentPool,
        n: int,
        methods: tuple[str, ...],
        seed: int,
        families: list[str],
        where: str = "workers",
    ):
        unknown = sorted(set(methods) - set(MAP_METHODS))
        if unknown or not methods:
            raise ValueError(f"data.simulate.methods: unknown or empty {unknown or methods}; valid: {', '.join(MAP_METHODS)}")
        if where not in ("workers", "device"):
            raise ValueError(f"data.simulate.where must be workers or device, got {where}")
        self.pool, self.n, self.methods, self.seed, self.where = pool, n, tuple(methods), seed, where
        self.family_code = {f: k for k, f in enumerate(families)}
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def draw(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return draw_map(self.methods[int(rng.integers(len(self.methods)))], rng, self.pool)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        drawn = self.draw(i)
        velocity = torch.from_numpy(drawn.velocity)  # (70, 70) float32
        if self.where == "workers":
            from kagglekit.fwi.physics import simulate

            _one_thread_per_worker()
            with torch.no_grad():
                seismic = simulate(velocity[None])[0].half()  # (5, 1000, 70)
        else:
            seismic = torch.zeros(SEISMIC_SHAPE, dtype=torch.float16)  # filled on the device
        return {
            "seismic": seismic,
            "velocity": velocity,
            "family": torch.tensor(self.family_code.get(drawn.family, -1)),
            "sample_id": torch.tensor(-1),
            "pending": torch.tensor(self.where == "device"),
        }


class MixedDataset(Dataset):
    """The rows of `base` (a converted-folder dataset), then the items of `extra` (simulated);
    the engine's shuffle mixes them. Items of `base` gain `pending = False`."""

    def __init__(self, base: Dataset, extra: SimulatedDataset):
        self.base, self.extra = base, extra

    def set_epoch(self, epoch: int) -> None:
        self.extra.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base) + len(self.extra)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i < len(self.base):
            return {**self.base[i], "pending": torch.tensor(False)}
        return self.extra[i - len(self.base)]
