"""kagglekit.parallel: deepwave's threads, torchrun ranks and shares, stale temp files, and
`fwi simulate` / `fwi augment` sharded over 2 gloo ranks (one killed, the rerun finishes) or a
process pool, each equal to a single-process run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kagglekit.cli import main
from kagglekit.errors import UserError
from kagglekit.fwi.augment.augment import augment
from kagglekit.fwi.data.datasets import ConvertedFolder
from kagglekit.fwi.synthetic import make_competition
from kagglekit.parallel import (
    Rank,
    current_rank,
    my_share,
    prepare_partial,
    remove_stale_temps,
    set_simulation_threads,
    simulation_threads,
)

THREADS_PROBE = """
import os, sys, torch
from kagglekit.parallel import set_simulation_threads, simulation_threads
from kagglekit.fwi.physics import generate_family, simulate
set_simulation_threads(int(sys.argv[1]))
with torch.no_grad():
    simulate(torch.from_numpy(generate_family("Style_B", 4, 0)))
print(simulation_threads(), torch.get_num_threads(), len(os.listdir("/proc/self/task")))
"""


def _threads_after_simulating(n: int) -> tuple[int, int, int]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # deepwave's default: every core
    out = subprocess.run([sys.executable, "-c", THREADS_PROBE, str(n)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(int(x) for x in out.stdout.split())


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_set_simulation_threads_governs_deepwaves_own_openmp_runtime():
    # set after deepwave is imported: OMP_NUM_THREADS alone would come too late, torch.set_num_threads misses it
    one, three = _threads_after_simulating(1), _threads_after_simulating(3)
    assert one[:2] == (1, 1) and three[:2] == (3, 3)
    assert three[2] >= one[2] + 2  # deepwave's runtime really started two more threads to simulate


def test_current_rank_reads_torchrun_and_shares_cover_every_item_once(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert current_rank() == Rank(0, 1, 0, 1) and current_rank().is_main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert current_rank() == Rank(3, 4, 1, 2) and not current_rank().is_main
    items = list(range(10))
    shares = [my_share(items, Rank(r, 4)) for r in range(4)]
    assert sorted(sum(shares, [])) == items and {len(s) for s in shares} == {2, 3}
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(UserError, match="inconsistent"):
        current_rank()


def test_a_rerun_removes_the_temp_files_of_dead_processes_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    partial = prepare_partial(tmp_path / "out", {"plan": 1})
    (partial / "sub").mkdir()
    stale = [partial / f".velocity.npy.tmp-{dead.pid}", partial / "sub" / f".x.csv.tmp-{dead.pid}"]
    live = [partial / f".rows.csv.tmp-{os.getppid()}", partial / f".mine.npy.tmp-{os.getpid()}"]
    for path in stale + live:
        path.write_text("partial write")
    assert prepare_partial(tmp_path / "out", {"plan": 1}) == partial
    assert not any(p.exists() for p in stale) and all(p.exists() for p in live)
    assert remove_stale_temps(partial) == []
    with pytest.raises(UserError, match="other settings"):
        prepare_partial(tmp_path / "out", {"plan": 2})


def _torchrun(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "kagglekit.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun worker `rank` (a child of the launcher `parent`)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def _kill_rank_once_a_shard_is_written(launcher: subprocess.Popen, partial: Path, done_glob: str) -> None:
    deadline = time.time() + 240
    while not [p for p in partial.glob(done_glob) if ".tmp-" not in p.name]:
        assert launcher.poll() is None, launcher.stdout.read()
        assert time.time() < deadline, "no shard written in time"
        time.sleep(0.02)
    pid = _rank_pid(launcher.pid, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    launcher.communicate(timeout=240)
    assert launcher.returncode != 0  # torchrun stops the group when a rank dies


def _same_trees(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.slow
def test_simulate_on_two_gloo_ranks_survives_a_killed_rank_and_equals_one_process(tmp_path):
    args = ["--per-file", "1", "--n-test", "3", "--seed", "3", "--batch-size", "2", "--device", "cpu"]
    out = tmp_path / "ranks"
    launcher = _torchrun("fwi", "simulate", str(out), *args)
    _kill_rank_once_a_shard_is_written(launcher, tmp_path / ".ranks.partial", "train_samples/*/*.npy")
    assert not out.exists()
    rerun = _torchrun("fwi", "simulate", str(out), *args)
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, log
    assert not (tmp_path / ".ranks.partial").exists() and not list(out.rglob(".*.tmp-*"))
    alone = make_competition(tmp_path / "alone", per_file=1, n_test=3, seed=3, batch=2, progress=False)
    _same_trees(out, alone)


@pytest.mark.slow
def test_augment_on_two_gloo_ranks_survives_a_killed_rank_and_equals_one_process(converted, tmp_path):
    out = tmp_path / "ranks"
    args = ["--count", "8", "--shard-size", "2", "--methods", "blend,flip6", "--seed", "4", "--device", "cpu"]
    launcher = _torchrun("fwi", "augment", str(converted), "--out", str(out), *args)
    _kill_rank_once_a_shard_is_written(launcher, tmp_path / ".ranks.partial", "rows_*.csv")
    assert not out.exists()
    rerun = _torchrun("fwi", "augment", str(converted), "--out", str(out), *args)
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, log
    alone = augment(converted, tmp_path / "alone", 8, "blend,flip6", seed=4, shard_size=2, progress=False)
    a, b = ConvertedFolder(out), ConvertedFolder(alone)
    pd.testing.assert_frame_equal(a.index, b.index)
    for name in ["velocity.npy", *(f"seismic_{k:05d}.npy" for k in range(4))]:
        np.testing.assert_array_equal(np.load(out / name), np.load(alone / name))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in alone.iterdir())


@pytest.mark.slow
def test_simulate_command_runs_one_worker_per_core_and_equals_the_in_process_call(tmp_path):
    assert (
        main(["fwi", "simulate", str(tmp_path / "pool"), "--per-file", "1", "--n-test", "2", "--device", "cpu", "--workers", "2"])
        == 0
    )
    alone = make_competition(tmp_path / "alone", per_file=1, n_test=2, progress=False)
    _same_trees(tmp_path / "pool", alone)


@pytest.mark.slow
def test_refine_on_two_gloo_ranks_survives_a_killed_rank_and_equals_one_process(synthetic_competition, tmp_path):
    from kagglekit.fwi.predictions import Predictions
    from kagglekit.fwi.refine import refine_file

    ids = pd.read_csv(synthetic_competition / "test_ids.csv", dtype=str)["id"].tolist()
    start = np.clip(np.load(synthetic_competition / "test_labels.npy") + 150.0, 1500, 4500)
    pred = Predictions(start, ids).write(tmp_path / "pred" / "pred.npy")
    test_dir = synthetic_competition / "test"
    args = [str(pred), "--test-dir", str(test_dir), "--iters", "2", "--batch-size", "1", "--device", "cpu"]
    out = tmp_path / "ranks"
    launcher = _torchrun("fwi", "refine", *args, "--out", str(out))
    _kill_rank_once_a_shard_is_written(launcher, out, "rank*of2/start_misfit.csv")
    assert not (out / "refined.npy").exists()
    rerun = _torchrun("fwi", "refine", *args, "--out", str(out))
    log = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, log
    alone = refine_file(pred, test_dir, tmp_path / "alone", iters=2, batch_size=1, device="cpu", progress=False)
    np.testing.assert_array_equal(np.load(out / "refined.npy"), np.load(alone / "refined.npy"))
    assert (out / "ids.txt").read_text() == (alone / "ids.txt").read_text()
    columns = ["sample_id", "residual_before", "residual_after", "accepted", "iterations", "status"]
    merged, single = (pd.read_csv(p / "residuals.csv", dtype=str).sort_values("sample_id")[columns] for p in (out, alone))
    pd.testing.assert_frame_equal(merged.reset_index(drop=True), single.reset_index(drop=True))


def killed_at(call: str, dst: str, src: str | None = None) -> int:
    """Run `call` in a fresh Python that kills itself (SIGKILL) at the os.replace onto a file named
    `dst` (from one named `src`, if given); its return code."""
    prelude = (
        "import os, signal\n"
        "_replace = os.replace\n"
        "def replace(a, b, *args, **kwargs):\n"
        f"    if os.path.basename(b) == {dst!r} and ({src!r} is None or os.path.basename(a) == {src!r}):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return _replace(a, b, *args, **kwargs)\n"
        "os.replace = replace\n"
    )
    return subprocess.run([sys.executable, "-c", prelude + call], capture_output=True, timeout=300).returncode


def test_augment_killed_mid_write_or_at_the_final_rename_resumes_and_tidies(converted, tmp_path):
    args = {"count": 7, "methods": "affine,family", "shard_size": 3, "progress": False}
    whole = ConvertedFolder(augment(converted, tmp_path / "whole", **args))
    call = (
        f"from kagglekit.fwi.augment.augment import augment; augment({str(converted)!r}, {str(tmp_path / 'cut')!r}, **{args!r})"
    )
    partial = tmp_path / ".cut.partial"
    # kill -9 while shard 1's seismic is being written: its temp file stays behind
    assert killed_at(call, "seismic_00001.npy") == -signal.SIGKILL
    assert not (tmp_path / "cut").exists() and (partial / "rows_00000.csv").is_file()
    assert list(partial.glob(".seismic_00001.npy.tmp-*"))
    # kill -9 at the final rename (old code had deleted plan.json by then: every rerun refused)
    assert killed_at(call, "cut", src=".cut.partial") == -signal.SIGKILL
    assert not (tmp_path / "cut").exists() and (partial / "manifest.json").is_file()
    assert not list(partial.glob(".*.tmp-*"))  # that rerun removed the dead run's temp file
    resumed = ConvertedFolder(augment(converted, tmp_path / "cut", **args))
    assert not partial.exists()
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == sorted(p.name for p in (tmp_path / "whole").iterdir())
    pd.testing.assert_frame_equal(resumed.index, whole.index)
    for i in range(7):
        np.testing.assert_array_equal(np.asarray(resumed.velocity(i)), np.asarray(whole.velocity(i)))
        np.testing.assert_array_equal(np.asarray(resumed.seismic(i)), np.asarray(whole.seismic(i)))


def test_simulate_killed_mid_file_resumes_without_redoing_finished_files(synthetic_competition, tmp_path):
    out = tmp_path / "comp"
    call = f"from kagglekit.fwi.synthetic import make_competition; make_competition({str(out)!r}, per_file=4, n_test=4, progress=False)"
    assert killed_at(call, "seis2_1_0.npy") == -signal.SIGKILL  # FlatFault_A's first file, mid-write
    partial = tmp_path / ".comp.partial"
    finished = partial / "train_samples" / "FlatVel_A" / "data" / "data1.npy"
    stamp = finished.stat().st_mtime_ns
    assert list(partial.rglob(".seis2_1_0.npy.tmp-*")) and not out.exists()
    assert make_competition(out, per_file=4, n_test=4, progress=False) == out
    assert not partial.exists() and not list(out.rglob(".*.tmp-*"))
    assert (out / "train_samples" / "FlatVel_A" / "data" / "data1.npy").stat().st_mtime_ns == stamp  # not redone
    _same_trees(out, synthetic_competition)


class _ReportsThreads(torch.utils.data.Dataset):
    """An on-the-fly dataset's items plus the simulation threads of the process that made them."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "threads": torch.tensor(simulation_threads())}


def test_on_the_fly_workers_simulate_on_one_thread_each(converted):
    from kagglekit.fwi.data.simulated import SimulatedDataset
    from kagglekit.fwi.data.training import TrainingData
    from kagglekit.fwi.maps import ParentPool

    data = TrainingData([str(converted)])
    train, _ = data.split(0)
    dataset = SimulatedDataset(ParentPool(data, train), 2, ("family",), seed=1, families=data.families, where="workers")
    set_simulation_threads(2)  # what a worker would inherit (OMP_NUM_THREADS=2) without its own setting
    try:
        loader = torch.utils.data.DataLoader(
            _ReportsThreads(dataset), batch_size=2, num_workers=1, multiprocessing_context="spawn"
        )
        (batch,) = list(loader)
    finally:
        set_simulation_threads(1)
    assert batch["threads"].tolist() == [1, 1]
    assert torch.equal(batch["seismic"], torch.stack([dataset[i]["seismic"] for i in range(2)]))
