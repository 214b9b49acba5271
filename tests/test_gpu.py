"""CUDA paths of the engine: fp16 with GradScaler, bf16, channels_last, torch.compile, NCCL DDP.

Marked `gpu`: skipped cleanly on machines without CUDA (`pytest -m gpu` runs only these).
"""

import json
import os
import subprocess

import pytest
import torch

from kagglekit.config import load_config
from kagglekit.engine.amp import amp_dtype, native_bf16
from kagglekit.engine.checkpoint import load_checkpoint
from kagglekit.engine.fit import fit
from tests.conftest import FWI_CONFIGS, train_command

pytestmark = pytest.mark.gpu


def _run(converted, tmp_path, *overrides, name="tiny_unet"):
    cfg = load_config(
        FWI_CONFIGS / f"{name}.yaml", [f"data.root={converted}", f"out_dir={tmp_path}", "train.epochs=2", *overrides]
    )
    run = fit(cfg, fold=0, progress=False)
    return run, [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_auto_amp_picks_native_bf16_or_fp16():
    dev = torch.device("cuda")
    assert amp_dtype("auto", dev) == (torch.bfloat16 if native_bf16(dev) else torch.float16)
    assert amp_dtype("fp16", dev) == torch.float16 and amp_dtype("off", dev) is None


def test_fp16_with_grad_scaler_trains(converted, tmp_path):
    run, records = _run(converted, tmp_path, "train.amp=fp16")
    scaler = load_checkpoint(run / "last.pt")["scaler"]
    assert scaler and scaler["scale"] > 0  # the scaler was active and its state saved
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in records)
    assert records[-1]["train_loss"] < records[0]["train_loss"]


def test_bf16_trains(converted, tmp_path):
    if not native_bf16(torch.device("cuda")):
        pytest.skip("this GPU has no native bf16")
    _, records = _run(converted, tmp_path, "train.amp=bf16")
    assert records[-1]["train_loss"] < records[0]["train_loss"]


def test_channels_last_and_compile_train(converted, tmp_path):
    _, records = _run(converted, tmp_path, "train.channels_last=true", "train.compile=true", name="tiny_hgnet")
    assert len(records) == 2 and all(r["valid/mae"] < 4500 for r in records)


def test_torchrun_nccl_two_processes(converted, tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    cmd = train_command("tiny_inversionnet", f"data.root={converted}", f"out_dir={tmp_path}", "train.epochs=2", nproc=2)
    result = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world 2" in result.stdout and "cuda" in result.stdout
