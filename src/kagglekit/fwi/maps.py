"""New velocity maps from existing ones (or from the family generators), before simulation.

Each method draws one map from a seeded generator and names its parents, so a generated row can
say where it came from (`origin`, e.g. "blend:12,345") and the training split can keep it out of
any fold that validates on one of its parents.

- blend:  a v1 + (1 - a) v2, a ~ U(0.3, 0.7); parents from one fold, within or across families
          (3rd place: 17x the data).
- mixup:  the same with a ~ Beta(0.4, 0.4): mostly one parent, nudged towards another.
- affine: crop-and-resize with a small rotation (zoom 1-1.3, +-8 degrees, bilinear), the map
          edges extended (1st place: FiveCrop + RandomAffine).
- family: a fresh map from a family generator (physics/families.py), no parent.
- flip6:  the exact mirror of a map, simulated with a 6th source at column 35 (`fwi augment`
          writes every simulated map twice then, for 1.2x the cost of once).

Used by `fwi augment` (fwi/augment/) and by on-the-fly training data (fwi/data/simulated.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import affine_transform

from kagglekit.fwi.constants import FAMILIES, GRID, VMAX, VMIN
from kagglekit.fwi.data.generated import format_origin
from kagglekit.fwi.physics.families import generate_family

MAP_METHODS = ("blend", "mixup", "affine", "family")  # methods that make a map
METHODS = (*MAP_METHODS, "flip6")
PARENTS_NEEDED = {"blend": 2, "mixup": 2, "affine": 1, "family": 0}


@dataclass(frozen=True)
class DrawnMap:
    velocity: np.ndarray  # (70, 70) float32, within VMIN-VMAX
    family: str  # the first parent's family (or the generator's)
    method: str
    parents: tuple[int, ...]  # sample ids in the source folder

    @property
    def origin(self) -> str:
        return format_origin(self.method, self.parents)


class ParentPool:
    """The maps new ones may be made from: sample ids of a folder, optionally in groups (folds) so
    that the parents of one map always share a group."""

    def __init__(self, folder, sample_ids: np.ndarray, groups: np.ndarray | None = None):
        self.folder = folder
        self.sample_ids = np.asarray(sample_ids, dtype=np.int64)
        if len(self.sample_ids) == 0:
            raise ValueError(f"{folder.root}: no maps to draw parents from")
        groups = np.zeros(len(self.sample_ids), dtype=np.int64) if groups is None else np.asarray(groups)
        self._members = [self.sample_ids[groups == g] for g in np.unique(groups)]
        self._family = folder.index["family"].astype(str).to_numpy()  # by row position == sample id (or row key)
        known = sorted(set(self._family[self.sample_ids].tolist()) & set(FAMILIES))
        self.generator_families = known or list(FAMILIES)  # what `family` draws: the folder's own families

    def pick(self, rng: np.random.Generator, k: int) -> tuple[int, ...]:
        members = self._members[int(rng.integers(len(self._members)))]
        return tuple(int(i) for i in rng.choice(members, size=k, replace=len(members) < k))

    def velocity(self, sample_id: int) -> np.ndarray:
        return np.asarray(self.folder.velocity(sample_id), dtype=np.float32)

    def family(self, sample_id: int) -> str:
        return str(self._family[sample_id])


def _affine(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zoom into a random window of the map with a small rotation; (70, 70) -> (70, 70)."""
    zoom = rng.uniform(1.0, 1.3)
    angle = np.deg2rad(rng.uniform(-8.0, 8.0))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
    centre = np.full(2, (GRID - 1) / 2)
    margin = (GRID - GRID / zoom) / 2  # how far the window may move and stay inside the map
    shift = rng.uniform(-margin, margin, size=2)
    offset = centre + shift - rot @ centre  # output pixel o samples input rot @ o + offset
    return affine_transform(v, rot, offset=offset, order=1, mode="nearest")


def draw_map(method: str, rng: np.random.Generator, pool: ParentPool) -> DrawnMap:
    """One new map by `method` (one of MAP_METHODS)."""
    if method == "family":
        family = str(rng.choice(pool.generator_families))
        return DrawnMap(generate_family(family, 1, rng)[0], family, method, ())
    parents = pool.pick(rng, PARENTS_NEEDED[method])
    maps = [pool.velocity(p) for p in parents]
    if method == "blend":
        a = rng.uniform(0.3, 0.7)
        v = a * maps[0] + (1 - a) * maps[1]
    elif method == "mixup":
        a = rng.beta(0.4, 0.4)
        v = a * maps[0] + (1 - a) * maps[1]
    elif method == "affine":
        v = _affine(maps[0], rng)
    else:
        raise ValueError(f"unknown map method '{method}'; valid: {', '.join(MAP_METHODS)}")
    return DrawnMap(np.clip(v, VMIN, VMAX).astype(np.float32), pool.family(parents[0]), method, parents)
