"""What every task's kernels share on Kaggle, once the code dataset's wheels are installed: staged
runs from a weights input, the device, and a training session that continues across Kaggle
sessions. The kernels themselves (what to predict, which data to train on) belong to the tasks
(`kagglekit.<task>.kernels`).

Nothing here imports deepwave, matplotlib or `kaggle`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from kagglekit.io import atomic_write_text
from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.paths import find_input, kaggle_root
from kagglekit.kaggle.stage import WEIGHTS_KIND, read_manifest
from kagglekit.log import logger

TRAINING_STATUS = "kagglekit-training.json"  # in working/: how far the training kernel got


def log(message: str) -> None:
    logger.info(message)


def staged_runs(weights_dir: Path, into: Path, task: str) -> list[Path]:
    """Run folders `<config>/<fold>/` (config.yaml and best.pt linked to the staged files) of a
    `kaggle stage-weights` folder, checked against its manifest (an incomplete upload fails here)."""
    manifest = read_manifest(weights_dir)
    if manifest["kind"] != WEIGHTS_KIND or manifest.get("task") != task:
        raise KaggleError(
            f"{weights_dir}: expected staged '{task}' weights, found {manifest['kind']} of task {manifest.get('task')!r}"
        )
    from kagglekit.engine.runs import RunFolder

    runs = []
    for entry in manifest["runs"]:
        run = into / entry["config"] / entry["fold"]
        run.mkdir(parents=True)
        for name, link in ((entry["weights"], RunFolder.BEST), (entry["config_file"], RunFolder.CONFIG)):
            src, size = weights_dir / name, manifest["files"][name]["bytes"]
            if not src.is_file() or src.stat().st_size != size:
                raise KaggleError(
                    f"{src}: missing or not the {size} bytes staged; the upload is incomplete, publish the weights again"
                )
            (run / link).symlink_to(src)
        runs.append(run)
    return runs


def pick_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def loader_workers(num_workers: int | None) -> int:
    return num_workers if num_workers is not None else min(4, os.cpu_count() or 1)


def _epochs_done(run_dir: Path) -> tuple[int, bool]:
    """(epochs a run folder has finished, whether it ended early on its time budget)."""
    from kagglekit.engine.runs import RunFolder

    records = RunFolder(run_dir).read_metrics()
    return max((r["epoch"] for r in records), default=0), bool(records and records[-1].get("budget_spent"))


def train_session(
    config_name: str,
    config_yaml: str,
    fold: int = 0,
    overrides: Sequence[str] = (),
    epochs_per_session: int | None = None,
    previous: str | None = None,
    root: str | os.PathLike | None = None,
    nproc: int | None = None,
    script: str | os.PathLike | None = None,
) -> Path:
    """One Kaggle session of training `fold` of the config `config_yaml` into working/runs/<config>/<fold>/:
    at most `epochs_per_session` epochs now; with `previous` (this kernel's earlier output attached
    as a kernel source) the run continues where it stopped. With several GPUs (`nproc`, default
    all) the kernel's own `script` (default: the running one) is launched once per GPU with
    torchrun; every rank then calls this function again and trains in-process (DDP).
    """
    import torch
    import yaml

    from kagglekit.config import config_from_dict
    from kagglekit.engine.runs import RunFolder
    from kagglekit.engine.train import train

    root = kaggle_root(root)
    out_dir = root / "working" / "runs"
    data = yaml.safe_load(config_yaml) or {}
    cfg = config_from_dict(
        {**data, "name": config_name}, source=f"{config_name} (kernel)", overrides=[f"out_dir={out_dir}", *overrides]
    )
    run = RunFolder.of(cfg, fold)
    if "LOCAL_RANK" in os.environ:  # a torchrun worker launched below: train, nothing else
        train(cfg, fold, resume=True, stop_after=_stop_after(run.path, epochs_per_session))
        return run.path

    if previous and not run.last.exists():
        rel = run.path.relative_to(root / "working")
        earlier = find_input("kernel", previous, f"{rel}/last.pt", root)
        shutil.copytree(earlier / rel, run.path)  # inputs are read-only: continue in working/
        log(f"continuing {earlier / rel} in {run.path}")
    before = _epochs_done(run.path)[0]
    stop_after = _stop_after(run.path, epochs_per_session)
    gpus = nproc if nproc is not None else torch.cuda.device_count()
    if gpus > 1:  # one process per GPU, each running this kernel's script again
        script = Path(script or sys.argv[0]).resolve()
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", str(script)]
        log("$ " + " ".join(cmd))
        env = {**os.environ, "KAGGLEKIT_KAGGLE_ROOT": str(root), "NCCL_P2P_DISABLE": os.environ.get("NCCL_P2P_DISABLE", "1")}
        code = subprocess.run(cmd, env=env).returncode  # NCCL_P2P_DISABLE=1: fixed a 2xT4 hang (docs/reference/kaggle-facts.md)
        if code != 0:
            raise KaggleError(f"training {config_name} fold {fold} failed on {gpus} GPUs (exit {code}); its log is above")
    else:
        train(cfg, fold, resume=True, stop_after=stop_after)
    done, budget_spent = _epochs_done(run.path)
    finished = done >= cfg.train.epochs or budget_spent
    status = {
        "config": config_name,
        "config_sha256": hashlib.sha256(config_yaml.encode()).hexdigest(),  # the config baked into this kernel version
        "fold": fold,
        "epochs_done": done,
        "epochs": cfg.train.epochs,
        "finished": finished,
    }
    atomic_write_text(root / "working" / TRAINING_STATUS, json.dumps(status, indent=1) + "\n")
    if finished:
        log(f"{config_name} {run.path.name} finished ({done} epochs): stage its weights from this kernel's output")
    else:
        log(
            f"{config_name} {run.path.name}: epochs {before + 1}-{done} of {cfg.train.epochs} done; render with --resume-from and push again"
        )
    return run.path


def _stop_after(run_dir: Path, epochs_per_session: int | None) -> int | None:
    return _epochs_done(run_dir)[0] + epochs_per_session if epochs_per_session else None
