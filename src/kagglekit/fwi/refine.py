"""`fwi refine`: refine predictions against the test seismic, worst-fitting maps first, within a budget.

`refine_predictions(pred, test_dir, out_dir)` works on a `Predictions` in memory and returns the
refined one; OUT_DIR holds its state, so a rerun with the same predictions continues:
- `source.json`: the content hash of the start (values + ids) and the test folder; another start refuses;
- `refined.npy` (float32, so whole-m/s values survive; the ids' order; maps not refined are the start unchanged) + `ids.txt`;
- `start_misfit.csv`: the ranking (relative misfit of start maps), appended chunk by chunk;
- `residuals.csv`: one row per refined sample (status "ok" or "failed", with the reason), appended
  batch by batch after the batch's rows are in refined.npy;
- `inflight.txt`: the ids of the batch being written (a rerun restores those not in residuals.csv).
A kill at any moment leaves files a rerun reads: a line cut off is dropped, a half-written batch is
restored to its start and redone, temporary files of dead processes are removed.

With a time budget (`minutes`) the ranking is part of it: a random share of the maps is ranked,
sized from the measured speed to a quarter of the time left, then the worst of those are refined;
when they are done and time is left, more are ranked. Without one, all maps are ranked first.

To split the work over ranks, each rank refines its share into its own folder,
`refine_predictions(pred.reordered(share), test_dir, out / f"rank{r}", ...)`, and one process then
calls `merge_refined(pred, [out / f"rank{r}" for r in ...], out)`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kagglekit.errors import UserError
from kagglekit.fwi.constants import VMAX, VMIN
from kagglekit.fwi.data.readers import TestFolder
from kagglekit.fwi.predictions import Predictions
from kagglekit.io import atomic_path, atomic_write_text, read_ids, write_ids
from kagglekit.parallel import remove_stale_temps
from kagglekit.progress import progress_bar

RESIDUAL_COLUMNS = [
    "sample_id",
    "residual_before",
    "residual_after",
    "accepted",
    "iterations",
    "seconds",
    "basis",
    "status",
    "reason",
]
RANK_COLUMNS = ["sample_id", "misfit"]
RANK_SHARE = 0.25  # share of the time left that one ranking round may take
RANK_SEED = 0  # the order in which maps are ranked under a budget (a random share, the same on reruns)
_CHUNK = 1024  # rows per chunk when hashing or copying predictions


def prediction_digest(pred: Predictions) -> str:
    """Content hash of the maps (as float32, so the storage dtype does not matter) and their ids."""
    h = hashlib.blake2b(digest_size=16)
    h.update("\n".join(pred.ids).encode())
    for start in range(0, len(pred), _CHUNK):
        h.update(np.ascontiguousarray(pred.values[start : start + _CHUNK], dtype=np.float32).tobytes())
    return h.hexdigest()


class _Journal:
    """An append-only CSV: each append is one write of whole lines, fsynced; a line cut off by a
    kill (no final newline, or the wrong number of fields) is dropped when read."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns

    def read(self) -> pd.DataFrame:
        """The complete rows (strings); the file is (re)created with its header when absent or empty."""
        text = self.path.read_text() if self.path.is_file() else ""
        complete = text[: text.rfind("\n") + 1]
        rows = list(csv.reader(io.StringIO(complete)))
        if not rows:  # absent, empty, or a header cut short
            atomic_write_text(self.path, ",".join(self.columns) + "\n")
            return pd.DataFrame(columns=self.columns)
        if rows[0] != self.columns:
            raise UserError(
                f"{self.path}: expected the header {','.join(self.columns)}, found {','.join(rows[0])} "
                "(written by another version?); choose another --out or delete the folder"
            )
        good = [r for r in rows[1:] if len(r) == len(self.columns)]
        if len(good) != len(rows) - 1 or len(complete) != len(text):
            with atomic_path(self.path) as tmp:
                tmp.write_text(_csv_lines([self.columns, *good]))
        return pd.DataFrame(good, columns=self.columns)

    def append(self, rows: list[list]) -> None:
        with open(self.path, "a", newline="") as f:
            f.write(_csv_lines(rows))
            f.flush()
            os.fsync(f.fileno())


def _csv_lines(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _observed(folder: TestFolder, position: dict[str, int], ids: list[str]) -> torch.Tensor:
    """(B, 5, 1000, 70) float32 seismic of the given ids."""
    return torch.from_numpy(np.stack([folder.read(position[i]) for i in ids]))


def _positions(folder: TestFolder, ids: list[str]) -> dict[str, int]:
    position = {sample_id: i for i, sample_id in enumerate(folder.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise UserError(f"{folder.root}: no seismic for {len(missing)} prediction ids (first: {missing[:3]})")
    return position


def _misfits(pred: Predictions, rows: list[int], folder: TestFolder, position: dict[str, int], device: str) -> np.ndarray:
    """(len(rows),) relative misfit of the start maps of `rows` (inf for a record without power)."""
    from kagglekit.fwi.physics.misfit import relative_misfit

    v = torch.from_numpy(np.stack([np.asarray(pred.values[i], np.float32) for i in rows])).clamp(VMIN, VMAX).to(device)
    with torch.no_grad():
        return relative_misfit(v, _observed(folder, position, [pred.ids[i] for i in rows]).to(device)).cpu().numpy()


def start_misfits(
    pred: Predictions,
    folder: TestFolder,
    out_csv: str | Path,
    *,
    device: str = "cpu",
    batch_size: int = 16,
    progress: bool = True,
    reuse: bool = False,
) -> pd.Series:
    """Relative misfit of every map (sample_id -> value), written to out_csv. With `reuse`, a file
    written for the same content (hash of values + ids, and the same test folder; recorded in
    `<out_csv>.source.json`) is read back instead."""
    out_csv = Path(out_csv)
    stamp_file = out_csv.with_name(out_csv.name + ".source.json")
    stamp = {"digest": prediction_digest(pred), "test_dir": str(folder.root.resolve())} if reuse else None
    if reuse and out_csv.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        done = pd.read_csv(out_csv, dtype={"sample_id": str}).set_index("sample_id")["misfit"]
        if list(done.index) == pred.ids:
            return done
    position = _positions(folder, pred.ids)
    values = np.zeros(len(pred))
    bar = progress_bar(total=len(pred), desc="misfit", unit="map", disable=not progress)
    for start in range(0, len(pred), batch_size):
        rows = list(range(start, min(start + batch_size, len(pred))))
        values[rows] = _misfits(pred, rows, folder, position, device)
        bar.update(len(rows))
    bar.close()
    series = pd.Series(values, index=pd.Index(pred.ids, name="sample_id"), name="misfit")
    stamp_file.unlink(missing_ok=True)  # never a stamp beside a file it does not describe
    atomic_write_text(out_csv, series.to_csv())
    if stamp is not None:
        atomic_write_text(stamp_file, json.dumps(stamp))
    return series


def misfit_files(predictions: dict[str, Path], test_dir: str | Path, *, device: str = "cpu") -> list[Path]:
    """`<name>.misfit.csv` beside each config-mean prediction file (per-fold files are skipped)."""
    folder, written = TestFolder(test_dir), []
    for name, path in predictions.items():
        if "__" in name:
            continue
        out = Path(path).with_name(f"{name}.misfit.csv")
        start_misfits(Predictions.read(path), folder, out, device=device)
        written.append(out)
    return written


class _OutDir:
    """The files of OUT_DIR (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = root
        self.source, self.refined, self.ids = root / "source.json", root / "refined.npy", root / "ids.txt"
        self.inflight = root / "inflight.txt"
        self.ranking = _Journal(root / "start_misfit.csv", RANK_COLUMNS)
        self.residuals = _Journal(root / "residuals.csv", RESIDUAL_COLUMNS)

    def prepare(self, pred: Predictions, folder: TestFolder) -> None:
        """Start the folder for `pred`, or check that it continues the refinement of the same content."""
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.root)
        stamp = {
            "digest": prediction_digest(pred),
            "maps": len(pred),
            "test_dir": str(folder.root.resolve()),
            "pred": str(pred.path.resolve()) if pred.path else "predictions in memory",
        }
        if self.source.is_file():
            try:
                old = json.loads(self.source.read_text())
            except ValueError as err:
                raise UserError(
                    f"{self.source}: not a refinement stamp ({err}); choose another --out or delete the folder"
                ) from None
            if not isinstance(old, dict) or "digest" not in old:
                raise UserError(f"{self.source}: written by an older kagglekit; choose another --out or delete the folder")
            if (old["digest"], old.get("test_dir")) != (stamp["digest"], stamp["test_dir"]):
                raise UserError(
                    f"{self.root}: continues the refinement of {old.get('pred')} (content {old['digest'][:12]}, test folder "
                    f"{old.get('test_dir')}), not of {stamp['pred']} (content {stamp['digest'][:12]}, test folder "
                    f"{stamp['test_dir']}); choose another --out or delete the folder"
                )
            if read_ids(self.ids) != pred.ids or not self.refined.is_file():
                raise UserError(
                    f"{self.root}: refined.npy or ids.txt is missing or differs; choose another --out or delete the folder"
                )
            return
        # a fresh folder (or one whose preparation was cut short): everything is written anew, stamp last
        for leftover in (self.inflight, self.ranking.path, self.residuals.path):
            leftover.unlink(missing_ok=True)
        with atomic_path(self.refined) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(pred), 70, 70))
            for start in range(0, len(pred), _CHUNK):
                out[start : start + _CHUNK] = pred.values[start : start + _CHUNK]
            out.flush()
            del out
        write_ids(self.ids, pred.ids)
        atomic_write_text(self.source, json.dumps(stamp))

    def restore_inflight(self, pred: Predictions, done: set[str]) -> None:
        """Rows of a batch cut off while being written go back to their start."""
        if not self.inflight.is_file():
            return
        position = {k: i for i, k in enumerate(pred.ids)}
        rows = [position[k] for k in read_ids(self.inflight) if k not in done and k in position]
        if rows:
            refined = np.load(self.refined, mmap_mode="r+")
            for i in rows:
                refined[i] = pred.values[i]
            refined.flush()
            del refined
        self.inflight.unlink()


def _check_limits(samples: int | None, minutes: float | None, iters: int, batch_size: int, rank_share: float) -> None:
    for name, value in (("samples", samples), ("minutes", minutes)):
        if value is not None and not 0 < value < math.inf:
            raise UserError(f"refine: --{name} must be > 0 and finite, found {value} (leave it out for no limit)")
    if iters < 1 or batch_size < 1:
        raise UserError(f"refine: --iters and --batch-size must be >= 1, found {iters} and {batch_size}")
    if not 0 < rank_share <= 1:
        raise UserError(f"refine: rank_share must be in (0, 1], found {rank_share}")


class _Ranker:
    """Ranks maps chunk by chunk (a fixed random order), appending to the ranking journal, until a time
    limit; measures the seconds per map so that chunks are sized to what fits."""

    def __init__(self, pred, folder, position, journal: _Journal, ranked: dict[str, float], device, batch_size, progress):
        self.pred, self.folder, self.position, self.journal = pred, folder, position, journal
        self.ranked, self.device, self.batch_size, self.progress = ranked, device, batch_size, progress
        order = np.random.default_rng(RANK_SEED).permutation(len(pred))
        self.unranked = [int(i) for i in order if pred.ids[i] not in ranked]
        self.seconds_per_map: float | None = None

    def rank(self, until: float | None) -> int:
        """Rank more maps, none started that would end after `until` (time.monotonic()); returns how many."""
        n_before = len(self.unranked)
        bar = progress_bar(total=len(self.unranked), desc="rank", unit="map", disable=not self.progress)
        while self.unranked:
            n = self.batch_size
            if until is not None:
                left = until - time.monotonic()
                per_map = self.seconds_per_map
                n = (1 if left > 0 else 0) if per_map is None else min(n, int(left / per_map))
                if n < 1:
                    break
            rows = self.unranked[:n]
            t0 = time.monotonic()
            values = _misfits(self.pred, rows, self.folder, self.position, self.device)
            per_map = (time.monotonic() - t0) / len(rows)
            self.seconds_per_map = per_map if self.seconds_per_map is None else 0.5 * (self.seconds_per_map + per_map)
            self.journal.append([[self.pred.ids[i], f"{v:.9g}"] for i, v in zip(rows, values, strict=True)])
            self.ranked.update({self.pred.ids[i]: float(v) for i, v in zip(rows, values, strict=True)})
            self.unranked = self.unranked[len(rows) :]
            bar.update(len(rows))
        bar.close()
        return n_before - len(self.unranked)


def refine_predictions(
    pred: Predictions,
    test_dir: str | Path,
    out_dir: str | Path,
    *,
    minutes: float | None = None,
    samples: int | None = None,
    iters: int = 40,
    device: str = "cpu",
    batch_size: int = 8,
    settings=None,
    rank_share: float = RANK_SHARE,
    progress: bool = True,
) -> Predictions:
    """Refine the `samples` worst-fitting maps of `pred` (all by default) within `minutes` (the whole
    call: hashing, ranking and refinement); returns the refined predictions (OUT_DIR/refined.npy)."""
    from dataclasses import replace

    from kagglekit.fwi.physics.refine import GRADIENT_COST, OK, RefineSettings, refine_batch

    t0 = time.monotonic()
    deadline = None if minutes is None else t0 + 60.0 * minutes
    _check_limits(samples, minutes, iters, batch_size, rank_share)
    median = pred.median_velocity()
    if not VMIN <= median <= VMAX:
        raise UserError(
            f"{pred.path or 'predictions'}: expected velocities in m/s ({VMIN:.0f}-{VMAX:.0f}), found a median of "
            f"{median:.4g}{' (km/s?)' if median < 10 else ''}; refinement fits m/s maps"
        )
    settings = replace(settings or RefineSettings(), iters=iters)
    out = _OutDir(Path(out_dir))
    folder = TestFolder(test_dir)
    position = _positions(folder, pred.ids)
    out.prepare(pred, folder)
    done_rows = out.residuals.read()
    done = set(done_rows["sample_id"])
    out.restore_inflight(pred, done)
    ranking = out.ranking.read()
    ranked = dict(zip(ranking["sample_id"], ranking["misfit"].astype(float), strict=True))
    ranker = _Ranker(pred, folder, position, out.ranking, ranked, device, batch_size, progress)
    row_of = {k: i for i, k in enumerate(pred.ids)}
    limit = samples or len(pred)

    def todo() -> list[int]:
        worst = sorted(ranked, key=lambda k: -np.nan_to_num(ranked[k], nan=np.inf))  # nan (no power) counts as worst
        return [row_of[k] for k in worst[:limit] if k not in done][: max(limit - len(done), 0)]

    def time_left() -> float:
        return np.inf if deadline is None else deadline - time.monotonic()

    refined = None
    gains: list[float] = []
    n_refined, stopped = 0, False
    eval_per_map = 0.0  # measured seconds of one objective + gradient evaluation per map (the largest seen)
    while not stopped:
        # a ranking round: all maps without a budget, else a share of the time left
        if ranker.unranked and ranker.rank(None if deadline is None else time.monotonic() + rank_share * time_left()) == 0:
            if not todo():
                break  # no time left to rank even one more map
        queue = todo()
        if not queue:
            if ranker.unranked and len(done) < limit and time_left() > 0:
                continue  # the ranked worst are done: rank more
            break
        bar = progress_bar(total=len(queue), desc="refine", unit="map", disable=not progress)
        while queue:
            # near the end of a budget, a smaller batch whose first evaluation still fits (or none)
            per_map = eval_per_map or GRADIENT_COST * (ranker.seconds_per_map or 0.0)
            fits = batch_size if deadline is None or per_map == 0 else min(batch_size, int(time_left() / per_map))
            if fits < 1:
                stopped = True
                break
            rows, queue = queue[:fits], queue[fits:]
            chunk = [pred.ids[i] for i in rows]
            start_maps = torch.from_numpy(np.stack([np.asarray(pred.values[i], np.float32) for i in rows])).to(device)
            observed = _observed(folder, position, chunk).to(device)
            estimate = eval_per_map * len(rows) if eval_per_map else None
            result = refine_batch(start_maps, observed, settings, deadline=deadline, eval_seconds=estimate)
            eval_per_map = max(eval_per_map, result.eval_seconds / len(rows))
            velocity = result.velocity.cpu().numpy()
            if refined is None:
                refined = np.load(out.refined, mmap_mode="r+")
            write_ids(out.inflight, chunk)
            for j, i in enumerate(rows):
                refined[i] = velocity[j] if bool(result.accepted[j]) else pred.values[i]
            refined.flush()
            per_sample = result.seconds / len(rows)
            out.residuals.append(
                [
                    [
                        sample_id,
                        f"{float(result.misfit_before[j]):.6g}",
                        f"{float(result.misfit_after[j]):.6g}",
                        int(bool(result.accepted[j])),
                        result.iterations[j],
                        f"{per_sample:.2f}",
                        result.plans[j],
                        result.status[j],
                        result.reasons[j],
                    ]
                    for j, sample_id in enumerate(chunk)
                ]
            )
            out.inflight.unlink()  # the batch is in residuals.csv: nothing to restore
            done.update(chunk)
            n_refined += len(rows)
            gains += [
                1 - float(result.misfit_after[j] / result.misfit_before[j].clamp_min(1e-12))
                for j in range(len(rows))
                if result.status[j] == OK
            ]
            bar.update(len(rows))
            bar.set_postfix(misfit_cut=f"{100 * np.mean(gains or [0.0]):.0f}%", s_per_map=f"{per_sample:.1f}")
            if result.out_of_time:
                stopped = True
                break
        bar.close()
    if refined is not None:
        del refined
    left = len(todo())
    if deadline is not None and (left or ranker.unranked):
        print(
            f"refine: the budget of {minutes} min ends with {len(ranked)} of {len(pred)} maps ranked and {len(done)} refined "
            f"({n_refined} in this call); rerun into {out.root} to continue"
        )
    elif n_refined == 0:
        print(f"refine: nothing to do in {out.root} ({len(done)} samples refined)")
    return Predictions(np.load(out.refined, mmap_mode="r"), list(pred.ids), out.refined)


def refine_file(pred_path: str | Path, test_dir: str | Path, out_dir: str | Path, **options) -> Path:
    """`refine_predictions` of a prediction file (ids.txt beside it); returns OUT_DIR."""
    refine_predictions(Predictions.read(pred_path), test_dir, out_dir, **options)
    return Path(out_dir)


def _refine_share(pred_path: str, test_dir: str, out_dir: str, n_shards: int, options: dict, shard: int) -> int:
    """Refine shard `shard` of `n_shards` (my_share of the ids) into OUT_DIR/rank<shard>of<n_shards>."""
    from kagglekit.parallel import Rank, my_share, worker_device

    pred = Predictions.read(pred_path)
    share = my_share(pred.ids, Rank(shard, n_shards))
    options = {**options, "device": worker_device(options.get("device", "cpu"))}
    refine_predictions(pred.reordered(share), test_dir, Path(out_dir) / f"rank{shard}of{n_shards}", **options)
    return len(share)


def refine_sharded(pred_path: str | Path, test_dir: str | Path, out_dir: str | Path, *, workers: int = 1, **options) -> Path:
    """`refine_file` split over torchrun ranks (rank r refines its share of the ids into
    OUT_DIR/rank<r>of<world>; after a barrier rank 0 merges them into OUT_DIR) or, alone, over
    `workers` processes on this machine (one per core or GPU). A rerun resumes every share and
    merges again. `samples` and `minutes` apply to each share."""
    from functools import partial

    from kagglekit import parallel

    rank = parallel.current_rank()
    n_shards = rank.world if rank.world > 1 else workers
    if n_shards == 1:
        if options.get("device", "cpu") == "cpu":
            parallel.set_simulation_threads(parallel.default_threads())
        return refine_file(pred_path, test_dir, out_dir, **options)
    if options.get("samples"):
        options["samples"] = -(-options["samples"] // n_shards)
    device = options.get("device", "cpu")
    work = partial(_refine_share, str(pred_path), str(test_dir), str(out_dir), n_shards)
    with parallel.process_group(rank):
        if rank.world > 1:  # this rank is one worker
            if device == "cpu":
                parallel.set_simulation_threads(max(1, parallel.available_cores() // rank.local_world))
            work({**options, "device": parallel.rank_device(device, rank)}, rank.rank)
        else:
            list(parallel.map_shards(partial(work, options), range(n_shards), device=device, workers=n_shards))
        parallel.barrier(rank)
        if rank.is_main:
            merge_refined(Predictions.read(pred_path), [Path(out_dir) / f"rank{r}of{n_shards}" for r in range(n_shards)], out_dir)
        parallel.barrier(rank)
    return Path(out_dir)


def merge_refined(pred: Predictions, shard_dirs: list[str | Path], out_dir: str | Path) -> Predictions:
    """One refined prediction from per-rank folders that each refined a share of `pred`'s ids:
    OUT_DIR/refined.npy (pred's order; rows of no shard are the start), ids.txt, residuals.csv."""
    out_dir = Path(out_dir)
    row_of = {k: i for i, k in enumerate(pred.ids)}
    residuals = []
    with atomic_path(out_dir / "refined.npy") as tmp:
        merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(pred), 70, 70))
        for start in range(0, len(pred), _CHUNK):
            merged[start : start + _CHUNK] = pred.values[start : start + _CHUNK]
        for shard in map(Path, shard_dirs):
            part = Predictions.read(shard / "refined.npy")
            missing = [k for k in part.ids if k not in row_of]
            if missing:
                raise UserError(f"{shard}: refined ids that the predictions do not have (first: {missing[:3]})")
            merged[[row_of[k] for k in part.ids]] = part.values
            residuals.append(_Journal(shard / "residuals.csv", RESIDUAL_COLUMNS).read())
        merged.flush()
        del merged
    write_ids(out_dir / "ids.txt", pred.ids)
    frame = pd.concat(residuals) if residuals else pd.DataFrame(columns=RESIDUAL_COLUMNS)
    atomic_write_text(out_dir / "residuals.csv", frame.to_csv(index=False))
    return Predictions(np.load(out_dir / "refined.npy", mmap_mode="r"), list(pred.ids), out_dir / "refined.npy")
