"""A complete synthetic competition folder in the exact Kaggle layout, simulated with deepwave.

OUT/
  train_samples/<Family>/...   the real file names of every family (data/dataN + model/modelN,
                               or seisX_Y_Z + velX_Y_Z for the Fault families), float32
  test/<10-hex-id>.npy         (5, 1000, 70) float32, one per id
  sample_submission.csv        oid_ypos, x_1, x_3, ..., x_69 (one row per id and depth row)
  test_labels.npy              hidden test velocities (N, 70, 70) float32, rows in test_ids.csv order
  test_ids.csv                 id, family
  synthetic.json               the parameters; a rerun with the same ones is a no-op
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kagglekit.fwi.constants import FAMILIES, GRID, SEISMIC_SHAPE
from kagglekit.fwi.physics import generate_family, simulate
from kagglekit.io import atomic_dir
from kagglekit.progress import progress_bar


def kaggle_train_files(family: str) -> list[tuple[str, str]]:
    """(seismic, velocity) relative paths of the two files of a family, as in train_samples/."""
    if "Fault" in family:
        tags = ("2_1_0", "4_1_0") if family.endswith("_A") else ("6_1_0", "8_1_0")
        return [(f"seis{t}.npy", f"vel{t}.npy") for t in tags]
    return [(f"data/data{k}.npy", f"model/model{k}.npy") for k in (1, 2)]


KAGGLE_TRAIN_FILES = {family: kaggle_train_files(family) for family in FAMILIES}

SUBMISSION_COLUMNS = ["oid_ypos"] + [f"x_{x}" for x in range(1, GRID, 2)]


def _simulate_batched(velocities: np.ndarray, out: np.ndarray, batch: int, bar, backend: str = "deepwave") -> None:
    """Fill out (N, 5, 1000, 70) with the simulated records of velocities (N, 70, 70)."""
    for start in range(0, len(velocities), batch):
        stop = min(start + batch, len(velocities))
        with torch.no_grad():
            out[start:stop] = simulate(torch.from_numpy(velocities[start:stop]), backend=backend).numpy()
        bar.update(stop - start)


def _test_ids(n: int, rng: np.random.Generator) -> list[str]:
    ids: set[str] = set()
    while len(ids) < n:
        ids.add("".join(f"{d:x}" for d in rng.integers(0, 16, 10)))
    return sorted(ids)


def write_sample_submission(path: Path, ids: list[str], fill: float = 3000.0) -> None:
    rows = [f"{i}_y_{y}" for i in ids for y in range(GRID)]
    frame = pd.DataFrame({"oid_ypos": rows})
    for col in SUBMISSION_COLUMNS[1:]:
        frame[col] = fill
    frame.to_csv(path, index=False)


def make_competition(
    out: str | Path,
    per_file: int = 50,
    n_test: int = 100,
    seed: int = 0,
    batch: int = 32,
    progress: bool = True,
    backend: str = "deepwave",
) -> Path:
    """Write the synthetic competition to `out` (atomically); a no-op if it exists with these parameters.

    backend="openfwi" simulates with the OpenFWI scheme itself (exact, about 10x slower on CPU).
    """
    out = Path(out)
    params = {"per_file": per_file, "n_test": n_test, "seed": seed, "version": 1}
    if backend != "deepwave":  # folders made before backends existed keep their stamp
        params["backend"] = backend
    stamp = out / "synthetic.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return out
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists with other content or parameters; remove it or choose another folder")
    with atomic_dir(out) as partial:
        _write_competition(partial, per_file, n_test, seed, batch, progress, backend)
        (partial / "synthetic.json").write_text(json.dumps(params))
    return out


def _write_competition(partial: Path, per_file: int, n_test: int, seed: int, batch: int, progress: bool, backend: str) -> None:
    n_models = len(FAMILIES) * 2 * per_file + n_test
    bar = progress_bar(total=n_models, desc="simulate", unit="model", disable=not progress)
    for fi, family in enumerate(FAMILIES):
        for fj, (seis_name, vel_name) in enumerate(KAGGLE_TRAIN_FILES[family]):
            velocities = generate_family(family, per_file, seed=[seed, fi, fj])  # (n, 70, 70)
            seis_path = partial / "train_samples" / family / seis_name
            vel_path = partial / "train_samples" / family / vel_name
            seis_path.parent.mkdir(parents=True, exist_ok=True)
            vel_path.parent.mkdir(parents=True, exist_ok=True)
            seismic = np.lib.format.open_memmap(seis_path, mode="w+", dtype=np.float32, shape=(per_file, *SEISMIC_SHAPE))
            _simulate_batched(velocities, seismic, batch, bar, backend)
            seismic.flush()
            del seismic
            np.save(vel_path, velocities[:, None])  # (n, 1, 70, 70)

    rng = np.random.default_rng([seed, 12345])
    ids = _test_ids(n_test, rng)
    test_families = [FAMILIES[k % len(FAMILIES)] for k in rng.permutation(n_test)]
    labels = np.zeros((n_test, GRID, GRID), dtype=np.float32)
    for fi, family in enumerate(FAMILIES):
        rows = [k for k, f in enumerate(test_families) if f == family]
        labels[rows] = generate_family(family, len(rows), seed=[seed, fi, 99])
    (partial / "test").mkdir(parents=True)
    records = np.zeros((min(batch, max(n_test, 1)), *SEISMIC_SHAPE), dtype=np.float32)
    for start in range(0, n_test, batch):
        stop = min(start + batch, n_test)
        _simulate_batched(labels[start:stop], records, batch, bar, backend)
        for k in range(start, stop):
            np.save(partial / "test" / f"{ids[k]}.npy", records[k - start])
    bar.close()
    np.save(partial / "test_labels.npy", labels)
    pd.DataFrame({"id": ids, "family": test_families}).to_csv(partial / "test_ids.csv", index=False)
    write_sample_submission(partial / "sample_submission.csv", ids)
