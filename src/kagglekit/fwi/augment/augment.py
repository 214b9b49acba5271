"""`kagglekit fwi augment`: new velocity maps from a converted folder, simulated, written as a
converted folder that training reads beside its source (`data.roots`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kagglekit.errors import UserError
from kagglekit.fwi.augment.folder import GeneratedRows, format_origin, write_generated_folder
from kagglekit.fwi.augment.maps import MAP_METHODS, METHODS, DrawnMap, ParentPool, draw_map
from kagglekit.fwi.constants import SEISMIC_SHAPE
from kagglekit.fwi.data.datasets import ConvertedFolder
from kagglekit.fwi.data.readers import DataError

PLAN_VERSION = 1


def parse_methods(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    methods = tuple(m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip())
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        raise UserError(f"--methods: unknown or empty {unknown or methods}; valid: {', '.join(METHODS)}")
    return methods


def simulate_maps(
    velocity: np.ndarray, *, mirror: bool = False, device: str = "cpu", batch: int = 32
) -> tuple[np.ndarray, np.ndarray | None]:
    """(n, 70, 70) -> records (n, 5, 1000, 70) float32 and, with `mirror`, the records of the
    mirrored maps (None otherwise); `batch` maps per simulator call on `device`."""
    from kagglekit.fwi.physics import simulate, simulate_with_mirror

    direct = np.zeros((len(velocity), *SEISMIC_SHAPE), dtype=np.float32)
    mirrored = np.zeros_like(direct) if mirror else None
    for start in range(0, len(velocity), batch):
        v = torch.from_numpy(velocity[start : start + batch]).to(device)
        with torch.no_grad():
            if mirror:
                d, m = simulate_with_mirror(v)
                mirrored[start : start + len(v)] = m.cpu().numpy()
            else:
                d = simulate(v)
        direct[start : start + len(v)] = d.cpu().numpy()
    return direct, mirrored


def shard_maker(pool: ParentPool, methods: tuple[str, ...], seed: int, device: str, batch: int):
    """make_shard(shard, n) for `write_generated_folder`: seeded by (seed, shard) alone."""
    map_methods = [m for m in methods if m in MAP_METHODS]
    flip = "flip6" in methods

    def make_shard(shard: int, n: int) -> GeneratedRows:
        rng = np.random.default_rng([seed, shard])
        if map_methods:  # new maps; with flip6 each is written twice (as drawn, then mirrored)
            n_draws = -(-n // 2) if flip else n
            draws = [draw_map(str(rng.choice(map_methods)), rng, pool) for _ in range(n_draws)]
        else:  # flip6 alone: the exact mirrors of source maps
            draws = []
            for _ in range(n):
                (parent,) = pool.pick(rng, 1)
                draws.append(DrawnMap(pool.velocity(parent), pool.family(parent), "flip6", (parent,)))
        velocity = np.stack([d.velocity for d in draws])  # (n_draws, 70, 70)
        direct, mirrored = simulate_maps(velocity, mirror=flip, device=device, batch=batch)
        rows = []  # (velocity, seismic, family, origin)
        for k, d in enumerate(draws):
            if d.method != "flip6":
                rows.append((d.velocity, direct[k], d.family, d.origin))
            if flip:
                tag = "flip6" if d.method == "flip6" else f"{d.method}+flip6"
                rows.append((d.velocity[:, ::-1], mirrored[k], d.family, format_origin(tag, d.parents)))
        v, seismic, family, origin = zip(*rows[:n], strict=True)
        return GeneratedRows(np.stack(v), np.stack(seismic), list(family), list(origin))

    return make_shard


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
    progress: bool = True,
) -> Path:
    """Write `count` generated rows made from the maps of converted folder `src` into `out`.

    Parents come from the cross-validation folds only (never the holdout), and the parents of one
    map from a single fold, so that a generated row is usable by every fold that does not validate
    on that fold. Resumable and a no-op when rerun (augment/folder.py)."""
    folder = ConvertedFolder(src)
    if folder.generated is not None:
        raise DataError(f"{folder.root}: is itself a generated folder; augment the converted folder it came from")
    methods = parse_methods(methods)
    folds = folder.index["fold"].to_numpy()
    usable = folds >= 0
    if not usable.any():
        raise DataError(f"{folder.root}/index.csv: no row is in a cross-validation fold (all holdout or excluded)")
    pool = ParentPool(folder, folder.index["sample_id"].to_numpy()[usable], groups=folds[usable])
    plan = {
        "kind": "augment",
        "version": PLAN_VERSION,
        "methods": list(methods),
        "seed": seed,
        "source": {"path": str(folder.root.resolve()), "fingerprint": folder.fingerprint},
    }
    make_shard = shard_maker(pool, methods, seed, device, batch)
    return write_generated_folder(out, plan, count, shard_size, make_shard, progress=progress, desc="augment")
