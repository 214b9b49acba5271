"""Physics jobs at full machine speed, on one machine or many, on existing engines.

- Threads: deepwave ships its own OpenMP runtime (deepwave.libs/libgomp-*.so), which
  `torch.set_num_threads` does not govern. `set_simulation_threads(n)` sets both that runtime and
  torch's pool (on a loaded 2-core machine, 16 maps took 27 s with the defaults and 1.3 s with one
  thread each).
- Ranks: under `torchrun` every process is one `Rank` (RANK / WORLD_SIZE / LOCAL_RANK) and takes
  `my_share` of the shards; a gloo group gives the barriers.
- One machine without torchrun: `map_shards` runs one single-threaded worker per core (a spawn
  `ProcessPoolExecutor`), or one worker per GPU.
- Shards: a `ShardedJob` writes one idempotent output per shard (atomic; present = done) in its
  `.OUT.partial/` folder (with a plan.json that a rerun must match), then one merge step, run by
  rank 0 after a barrier (or by rerunning the same command by hand), writes the usual files.
  `run_job` is the whole pattern; a killed run resumes by running the same command again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import datetime
import json
import multiprocessing
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from kagglekit.errors import UserError
from kagglekit.io import atomic_write_text
from kagglekit.progress import progress_bar

T = TypeVar("T")


# ----------------------------------------------------------------------------------- threads
def _deepwave_openmp() -> ctypes.CDLL | None:
    """deepwave's compiled library, through which its bundled OpenMP runtime's symbols resolve
    (None when deepwave was built without OpenMP)."""
    from deepwave import _backend_utils

    return _backend_utils.dll if _backend_utils.USE_OPENMP else None


def set_simulation_threads(n: int) -> None:
    """Run deepwave (its own OpenMP runtime) and torch's intra-op pool with `n` threads in this
    process; OMP_NUM_THREADS=n is also what child processes inherit."""
    import torch

    if n < 1:
        raise ValueError(f"simulation threads must be >= 1, got {n}")
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    dll = _deepwave_openmp()
    if dll is not None:
        dll.omp_set_num_threads(ctypes.c_int(n))


def simulation_threads() -> int:
    """The threads deepwave's OpenMP runtime would use for its next parallel region."""
    dll = _deepwave_openmp()
    if dll is None:
        return 1
    dll.omp_get_max_threads.restype = ctypes.c_int
    return int(dll.omp_get_max_threads())


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads() -> int:
    """Threads of one worker alone on the machine: OMP_NUM_THREADS when set, else every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or available_cores())


def default_workers(device: str) -> int:
    """One worker per GPU on cuda, one per core on the CPU."""
    if device.startswith("cuda"):
        import torch

        return max(1, torch.cuda.device_count())
    return available_cores()


# ------------------------------------------------------------------------------------- ranks
@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_rank() -> Rank:
    """This process's place under torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); one
    process alone is Rank(0, 1)."""
    env = os.environ
    try:
        rank = Rank(
            int(env.get("RANK", 0)),
            int(env.get("WORLD_SIZE", 1)),
            int(env.get("LOCAL_RANK", 0)),
            int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1))),
        )
    except ValueError as exc:
        raise UserError(f"torchrun environment: RANK / WORLD_SIZE / LOCAL_RANK must be integers ({exc})") from None
    if not 0 <= rank.rank < rank.world or not 0 <= rank.local_rank < rank.local_world:
        raise UserError(
            f"torchrun environment: RANK {rank.rank} / WORLD_SIZE {rank.world} / LOCAL_RANK {rank.local_rank} are inconsistent"
        )
    return rank


def my_share(items: Sequence[T], rank: Rank) -> list[T]:
    """Every world-th item from this rank's position: shares differ by at most one item and are the
    same on every rerun, so each shard has exactly one owner."""
    return list(items[rank.rank :: rank.world])


def rank_device(device: str, rank: Rank) -> str:
    """cuda -> cuda:<local rank> under torchrun (one GPU per process); anything else unchanged."""
    return f"cuda:{rank.local_rank}" if device == "cuda" and rank.world > 1 else device


@contextlib.contextmanager
def process_group(rank: Rank) -> Iterator[None]:
    """A gloo group for the barriers of a multi-rank job (none for one process, the caller's if one exists)."""
    import torch.distributed as dist

    if rank.world == 1 or dist.is_initialized():
        yield
        return
    # shards can take hours: a rank that finished early waits at the barrier for the others
    dist.init_process_group("gloo", timeout=datetime.timedelta(hours=24))
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(rank: Rank) -> None:
    if rank.world > 1:
        import torch.distributed as dist

        dist.barrier()


# ------------------------------------------------------------------------ workers on a machine
_WORKER_DEVICE: str | None = None


def worker_device(default: str) -> str:
    """The device `map_shards` gave this worker (a pool worker's own GPU, a torchrun rank's
    cuda:<local rank>), else `default`."""
    return _WORKER_DEVICE or default


def _init_worker(threads: int, devices) -> None:
    global _WORKER_DEVICE
    set_simulation_threads(threads)
    if devices is not None:
        _WORKER_DEVICE = devices.get()


def map_shards(
    work: Callable[[T], int], shards: Sequence[T], *, device: str = "cpu", workers: int = 1, threads: int | None = None
) -> Iterator[int]:
    """Run `work(shard)` for every shard and yield each one's return value (items done) as it
    finishes. workers <= 1 or one shard: in this process, with `threads` simulation threads on the
    CPU (default: OMP_NUM_THREADS if set, else every core); else a spawn process pool of `workers`
    single-threaded processes (cpu) or one process per GPU (cuda: worker k owns cuda:k); `work`
    and the shards must pickle."""
    global _WORKER_DEVICE
    shards = list(shards)
    if device == "cuda" and workers > 1:
        import torch

        workers = min(workers, torch.cuda.device_count())  # one process per GPU, never two on one
    if workers <= 1 or len(shards) <= 1:
        if not device.startswith("cuda"):
            set_simulation_threads(threads or default_threads())
        before, _WORKER_DEVICE = _WORKER_DEVICE, device  # e.g. this torchrun rank's cuda:<local rank>
        try:
            for shard in shards:
                yield work(shard)
        finally:
            _WORKER_DEVICE = before
        return
    workers = min(workers, len(shards))
    context = multiprocessing.get_context("spawn")
    devices = None
    if device == "cuda":
        devices = context.Queue()
        for k in range(workers):
            devices.put(f"cuda:{k}")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(1, devices)
    ) as pool:
        futures = [pool.submit(work, shard) for shard in shards]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


# ------------------------------------------------------------------------- sharded outputs
_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")  # kagglekit.io.atomic_path's temporary names


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the `.NAME.tmp-<pid>` files (and folders) under `folder` whose process is gone: what
    a kill -9 leaves of an atomic write. Returns what it removed."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.rglob(".*.tmp-*")):
        match = _TEMP.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path)
    return removed


def partial_folder(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def prepare_partial(out: Path, plan: dict) -> Path:
    """The `.OUT.partial/` folder a job fills: an unfinished run with the same plan is resumed (its
    stale temporary files removed), one with another plan is refused, one without a plan (killed
    before it wrote one, or not ours) starts over."""
    partial = partial_folder(out)
    plan_path = partial / "plan.json"
    if partial.exists() and not plan_path.is_file():
        shutil.rmtree(partial)
    if partial.exists():
        if json.loads(plan_path.read_text()) != plan:
            raise UserError(
                f"{partial}: an unfinished run with other settings; remove it to start over, or rerun with its plan.json"
            )
        remove_stale_temps(partial)
    else:
        partial.mkdir(parents=True)
        atomic_write_text(plan_path, json.dumps(plan, indent=1))
    return partial


def publish(partial: Path, out: Path) -> None:
    """Rename the merged partial folder into place (plan.json travels and is removed after, so a
    kill between the two leaves a complete folder the next run recognises and tidies)."""
    os.replace(partial, out)
    (out / "plan.json").unlink(missing_ok=True)


class ShardedJob(Protocol):
    """What `run_job` needs of a job; it must pickle (no open files) to reach pool workers."""

    out: Path

    def finished(self) -> bool: ...  # out holds this job's result (tidy its leftovers); refuse other content

    def prepare(self) -> None: ...  # main rank, before any shard: the partial folder and its plan

    def shards(self) -> list: ...  # every shard key, the same list on every rank and rerun

    def work(self, shard) -> int: ...  # write the shard's output unless present; items done

    def total(self) -> int: ...  # items over all shards (progress)

    def merge(self) -> None: ...  # main rank, every shard present: write the usual files, publish


def run_job(job: ShardedJob, *, device: str = "cpu", workers: int = 1, progress: bool = True, desc: str = "simulate") -> Path:
    """The pattern: prepare (rank 0) | barrier | each rank its share of shards (on a machine:
    `workers` processes) | barrier | merge (rank 0) | barrier. Any rank may be killed: rerunning the
    same command skips the shards written and finishes."""
    if job.finished():
        return job.out
    rank = current_rank()
    with process_group(rank):
        if rank.is_main:
            job.prepare()
        barrier(rank)
        share = my_share(job.shards(), rank)
        bar = progress_bar(total=job.total(), desc=desc, unit="map", disable=not (progress and rank.is_main))
        # under torchrun each rank is one worker: the machine's cores split between its ranks
        threads = max(1, available_cores() // rank.local_world) if rank.world > 1 else None
        if rank.world > 1:
            workers = 1
        for done in map_shards(job.work, share, device=rank_device(device, rank), workers=workers, threads=threads):
            bar.update(done)
        bar.close()
        barrier(rank)
        if rank.is_main:
            job.merge()
        barrier(rank)
    return job.out
