"""`kagglekit fwi augment`: new velocity maps from a converted folder, simulated, written as a
converted folder that training reads beside its source (`data.roots`). Shards run over torchrun
ranks or one single-threaded worker per core (kagglekit.parallel); a rerun resumes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kagglekit.errors import UserError
from kagglekit.fwi.data.datasets import ConvertedFolder
from kagglekit.fwi.data.generated import GeneratedRows, format_origin, write_generated_folder
from kagglekit.fwi.data.readers import DataError
from kagglekit.fwi.maps import MAP_METHODS, METHODS, DrawnMap, ParentPool, draw_map
from kagglekit.fwi.physics.simulate import simulate_maps
from kagglekit.parallel import worker_device

PLAN_VERSION = 1


def parse_methods(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip())
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise UserError(f"--methods: unknown or empty {unknown or methods}; valid: {', '.join(METHODS)}")
    return methods


@dataclass
class AugmentShards:
    """make_shard(shard, n) for `write_generated_folder`: seeded by (seed, shard) alone; pickles
    as paths and numbers (each worker opens the source folder itself)."""

    src: Path
    sample_ids: np.ndarray  # (n,) parents allowed: cross-validation rows
    groups: np.ndarray  # (n,) their folds: the parents of one map share one
    methods: tuple[str, ...]
    seed: int
    device: str
    batch: int

    @functools.cached_property
    def pool(self) -> ParentPool:
        return ParentPool(ConvertedFolder(self.src), self.sample_ids, groups=self.groups)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "pool"}  # memmaps stay in their process

    def __call__(self, shard: int, n: int) -> GeneratedRows:
        rng = np.random.default_rng([self.seed, shard])
        pool = self.pool
        map_methods = [m for m in self.methods if m in MAP_METHODS]
        flip = "flip6" in self.methods
        if map_methods:  # new maps; with flip6 each is written twice (as drawn, then mirrored)
            n_draws = -(-n // 2) if flip else n
            draws = [draw_map(str(rng.choice(map_methods)), rng, pool) for _ in range(n_draws)]
        else:  # flip6 alone: the exact mirrors of source maps
            draws = []
            for _ in range(n):
                (parent,) = pool.pick(rng, 1)
                draws.append(DrawnMap(pool.velocity(parent), pool.family(parent), "flip6", (parent,)))
        velocity = np.stack([d.velocity for d in draws])  # (n_draws, 70, 70)
        direct, mirrored = simulate_maps(velocity, mirror=flip, device=worker_device(self.device), batch=self.batch)
        rows = []  # (velocity, seismic, family, origin)
        for k, d in enumerate(draws):
            if d.method != "flip6":
                rows.append((d.velocity, direct[k], d.family, d.origin))
            if flip:
                tag = "flip6" if d.method == "flip6" else f"{d.method}+flip6"
                rows.append((d.velocity[:, ::-1], mirrored[k], d.family, format_origin(tag, d.parents)))
        v, seismic, family, origin = zip(*rows[:n], strict=True)
        return GeneratedRows(np.stack(v), np.stack(seismic), list(family), list(origin))


def augment(
    src: str | Path,
    out: str | Path,
    count: int,
    methods: str | tuple[str, ...] = METHODS,
    *,
    seed: int = 0,
    device: str = "cpu",
    shard_size: int = 256,
    batch: int = 32,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Write `count` generated rows made from the maps of converted folder `src` into `out`.

    Parents come from the cross-validation folds only (never the holdout), and the parents of one
    map from a single fold, so that a generated row is usable by every fold that does not validate
    on that fold. Resumable and a no-op when rerun (fwi/data/generated.py); the rows do not depend
    on `workers` or the number of torchrun ranks."""
    for name, value in (("--count", count), ("--shard-size", shard_size), ("--batch", batch), ("--workers", workers)):
        if value < 1:
            raise UserError(f"fwi augment: {name} must be >= 1, got {value}")
    folder = ConvertedFolder(src)
    if folder.generated is not None:
        raise DataError(f"{folder.root}: is itself a generated folder; augment the converted folder it came from")
    methods = parse_methods(methods)
    folds = folder.index["fold"].to_numpy()
    usable = folds >= 0
    if not usable.any():
        raise DataError(f"{folder.root}/index.csv: no row is in a cross-validation fold (all holdout or excluded)")
    plan = {
        "kind": "augment",
        "version": PLAN_VERSION,
        "methods": list(methods),
        "seed": seed,
        "source": {"path": str(folder.root.resolve()), "fingerprint": folder.fingerprint},
    }
    make_shard = AugmentShards(
        folder.root, folder.index["sample_id"].to_numpy()[usable], folds[usable], methods, seed, device, batch
    )
    return write_generated_folder(
        out, plan, count, shard_size, make_shard, progress=progress, desc="augment", device=device, workers=workers
    )
