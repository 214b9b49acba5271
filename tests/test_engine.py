"""The training engine through its real path: config -> registry -> task -> fit -> run folder."""

import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from kagglekit.config import load_config
from kagglekit.engine.amp import amp_dtype
from kagglekit.engine.checkpoint import CheckpointError, load_checkpoint
from kagglekit.engine.distributed import DistContext
from kagglekit.engine.fit import fit, make_loader, predict_loader
from kagglekit.engine.task import build_task
from kagglekit.fwi.data.convert import convert, recompute_folds
from kagglekit.fwi.metrics import sample_mae
from tests.conftest import FWI_CONFIGS, train_command

# tiny_unet, 10 epochs on 64 training samples reaches 582 m/s against 767 for the training mean
# map (0.76) and 832 for the untrained model (0.70): the bars below leave ~5% of margin.
MEAN_MAP_RATIO = 0.8


def cfg_for(name, converted, tmp_path, *overrides):
    return load_config(FWI_CONFIGS / f"{name}.yaml", [f"data.root={converted}", f"out_dir={tmp_path / 'runs'}", *overrides])


def test_short_run_lowers_validation_mae_and_writes_run_folder(converted, tmp_path):
    cfg = cfg_for("tiny_unet", converted, tmp_path, "train.epochs=10", "train.lr=3e-3")
    task = build_task(cfg)
    _, valid = task.datasets(0)
    torch.manual_seed(cfg.train.seed)
    untrained = task.build_model()
    outputs, keys = predict_loader(task, untrained, make_loader(valid, cfg, DistContext(), 0, False), DistContext(), None, False)
    mae_before = task.evaluate(outputs, keys)["mae"]
    train, _ = task.datasets(0)
    velocity_all = np.load(converted / "velocity.npy")
    mean_map = velocity_all[train.sample_ids].mean(axis=0)  # the best constant prediction's stand-in
    mae_mean_map = float(sample_mae(np.broadcast_to(mean_map, keys["velocity"].shape), keys["velocity"].numpy()).mean())

    run = fit(cfg, fold=0, progress=False)
    assert run == tmp_path / "runs" / "tiny_unet" / "fold0"
    for name in ("best.pt", "last.pt", "metrics.jsonl", "config.yaml", "oof.npy", "oof_ids.csv"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 11))
    best = min(r["valid/mae"] for r in records)
    assert best < 0.75 * mae_before, (best, mae_before)
    assert best < MEAN_MAP_RATIO * mae_mean_map, (best, mae_mean_map)
    assert all(r["valid/mae"] != r["valid/mae_all_columns"] for r in records)  # the Kaggle metric: odd columns
    assert {"valid/mae/FlatVel_A", "valid/mae/Style_B"} <= set(records[0])
    oof = np.load(run / "oof.npy")
    ids = pd.read_csv(run / "oof_ids.csv")
    assert oof.dtype == np.float16 and oof.shape == (len(valid), 70, 70) and len(ids) == len(valid)
    index = pd.read_csv(converted / "index.csv")
    assert set(ids["sample_id"]) == set(index.loc[index["fold"] == 0, "sample_id"])
    # the saved OOF reproduces the best epoch's Kaggle MAE (odd columns)
    velocity = velocity_all[ids["sample_id"].to_numpy()]
    assert abs(sample_mae(oof, velocity).mean() - best) < 1.0
    assert load_config(run / "config.yaml") == cfg


def test_ema_weights_differ_and_best_holds_them(converted, tmp_path):
    cfg = cfg_for("tiny_inversionnet", converted, tmp_path, "train.epochs=1")
    run = fit(cfg, fold=1, progress=False)
    last = load_checkpoint(run / "last.pt")
    best = load_checkpoint(run / "best.pt")
    raw, ema = last["model"], last["ema"]
    differing = [k for k in raw if raw[k].is_floating_point() and not torch.equal(raw[k], ema[k])]
    assert differing, "EMA weights should differ from the raw ones"
    assert all(torch.equal(best["model"][k], ema[k]) for k in ema)


def test_resume_matches_uninterrupted_run(converted, tmp_path):
    straight = fit(cfg_for("tiny_inversionnet", converted, tmp_path / "a", "train.epochs=3"), fold=0, progress=False)
    cfg_b = cfg_for("tiny_inversionnet", converted, tmp_path / "b", "train.epochs=3")
    paused = fit(cfg_b, fold=0, progress=False, stop_after=2)
    assert load_checkpoint(paused / "last.pt")["epoch"] == 1
    with pytest.raises(FileExistsError, match="--resume"):
        fit(cfg_b, fold=0, progress=False)
    resumed = fit(cfg_b, fold=0, resume=True, progress=False)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(resumed / "last.pt")
    for part in ("model", "ema"):
        for key in a[part]:
            torch.testing.assert_close(a[part][key], b[part][key], rtol=0, atol=1e-6, msg=f"{part}.{key}")
    lines_a = (straight / "metrics.jsonl").read_text().splitlines()
    lines_b = (resumed / "metrics.jsonl").read_text().splitlines()
    assert len(lines_b) == 3
    for la, lb in zip(lines_a, lines_b):
        ra, rb = json.loads(la), json.loads(lb)
        assert ra["valid/mae"] == pytest.approx(rb["valid/mae"], abs=1e-3)


def test_resume_refuses_changed_folds(converted, tmp_path):
    import shutil

    conv = tmp_path / "conv"
    shutil.copytree(converted, conv)
    cfg = cfg_for("tiny_inversionnet", conv, tmp_path, "train.epochs=2")
    fit(cfg, fold=0, progress=False, stop_after=1)
    recompute_folds(conv, n_folds=5, seed=7)
    with pytest.raises(CheckpointError, match="another fold assignment"):
        fit(cfg, fold=0, resume=True, progress=False)


def test_time_budget_anneals_the_schedule(converted, tmp_path):
    # a budget far below what 50 epochs take: the run stops early, but with the lr annealed
    cfg = cfg_for(
        "tiny_inversionnet", converted, tmp_path, "train.epochs=50", "train.max_minutes=0.05", "train.min_lr_ratio=0.01"
    )
    run = fit(cfg, fold=0, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) < 50 and records[-1]["budget_spent"]
    assert records[-1]["lr"] == pytest.approx(cfg.train.lr * 0.01, rel=1e-6)
    assert records[-1]["epochs_done"] <= len(records)
    last = load_checkpoint(run / "last.pt")
    assert last["schedule"]["progress"] == 1.0


def test_progress_in_a_log_file_has_no_carriage_returns(converted, tmp_path):
    log = tmp_path / "train.log"
    cmd = train_command(
        "tiny_inversionnet", f"data.root={converted}", f"out_dir={tmp_path / 'runs'}", "train.epochs=2", "train.batch_size=4"
    )
    with open(log, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True, timeout=300)
    text = log.read_text()
    assert "\r" not in text
    bar_lines = [line for line in text.splitlines() if line.startswith("epoch 1/2:")]
    assert 1 <= len(bar_lines) <= 11 and "100%" in bar_lines[-1]  # one line per 10%, ending at 100%


def test_corrupt_checkpoint_is_named(converted, tmp_path):
    cfg = cfg_for("tiny_inversionnet", converted, tmp_path, "train.epochs=2")
    run = fit(cfg, fold=2, progress=False, stop_after=1)
    (run / "last.pt").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match=r"last\.pt: cannot read checkpoint"):
        fit(cfg, fold=2, resume=True, progress=False)


def test_fold_minus_one_trains_on_all_folds_and_scores_holdout(synthetic_competition, tmp_path):
    conv = convert(synthetic_competition / "train_samples", tmp_path / "conv", holdout=0.25, progress=False)
    cfg = cfg_for("tiny_inversionnet", conv, tmp_path, "train.epochs=1")
    task = build_task(cfg)
    train, valid = task.datasets(-1)
    index = pd.read_csv(conv / "index.csv")
    assert len(train) == (index["fold"] >= 0).sum() and len(valid) == (index["fold"] == -1).sum() == 20
    run = fit(cfg, fold=-1, progress=False)
    assert run.name == "full"
    assert set(pd.read_csv(run / "oof_ids.csv")["sample_id"]) == set(index.loc[index["fold"] == -1, "sample_id"])
    with pytest.raises(Exception, match="fold 9 not found"):
        task.datasets(9)


@pytest.mark.slow
def test_ddp_two_processes_gloo(converted, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = train_command("tiny_inversionnet", f"data.root={converted}", f"out_dir={tmp_path / 'runs'}", "train.epochs=2", nproc=2)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs").glob("*/*"))
    assert runs == [tmp_path / "runs" / "tiny_inversionnet" / "fold0"]
    run = runs[0]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # one writer
    ids = pd.read_csv(run / "oof_ids.csv")["sample_id"]
    index = pd.read_csv(converted / "index.csv")
    assert sorted(ids) == sorted(index.loc[index["fold"] == 0, "sample_id"])  # gathered from both ranks
    assert result.stdout.count("best epoch") == 1


def test_cpu_bf16_autocast_is_opt_in_and_trains(converted, tmp_path):
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("fp16", cpu) is None
    assert amp_dtype("bf16", cpu) == torch.bfloat16
    cfg = cfg_for("tiny_unet", converted, tmp_path, "train.epochs=2", "train.amp=bf16")
    run = fit(cfg, fold=0, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["valid/mae"]) for r in records)
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert np.load(run / "oof.npy").dtype == np.float16


PHYSICS_COMMON = ["train.epochs=1", "data.max_train_samples=4", "train.batch_size=2", "train.ema_decay=null"]


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _param_grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in model.parameters()])


def test_physics_term_is_what_moves_the_weights(converted, tmp_path):
    """Against a control with physics.weight=0 and identical data and RNG, the trained weights
    differ, and the gradient of the task's objective differs from the control's by exactly
    weight x the gradient of the relative misfit (so a detached or zeroed term fails)."""
    weight = 100.0
    physics = [f"physics.weight={weight}", "physics.warmup=0", "physics.samples=1"]
    control = fit(cfg_for("tiny_unet", converted, tmp_path / "control", *PHYSICS_COMMON), fold=0, progress=False)
    cfg = cfg_for("tiny_unet", converted, tmp_path / "physics", *PHYSICS_COMMON, *physics)
    run = fit(cfg, fold=0, progress=False)
    a, b = load_checkpoint(control / "last.pt")["model"], load_checkpoint(run / "last.pt")["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    # every term the task returns is logged; "loss" (train_loss) is the weighted total
    (record,) = _records(run)
    assert record["train_physics"] > 0 and np.isfinite(record["train_supervised"])
    assert record["train_loss"] == pytest.approx(record["train_supervised"] + weight * record["train_physics"], rel=1e-5)
    assert {"train_physics", "train_supervised"}.isdisjoint(_records(control)[0])

    # one batch: gradient(weight W) - gradient(weight 0) == W x gradient(misfit of the first sample)
    from kagglekit.fwi.constants import VMAX, VMIN
    from kagglekit.fwi.physics.misfit import relative_misfit

    task, task0 = build_task(cfg), build_task(cfg_for("tiny_unet", converted, tmp_path / "c0", *PHYSICS_COMMON))
    train, _ = task.datasets(0)
    batch = next(iter(make_loader(train, cfg, DistContext(), 0, train=True)))
    torch.manual_seed(0)
    model = task.build_model().eval()  # eval: batch-norm statistics stay put between the passes
    g_w = _param_grads(model, task.train_loss(task.forward(model, batch), batch, progress=0.5)["loss"])
    g_0 = _param_grads(model, task0.train_loss(task0.forward(model, batch), batch, progress=0.5)["loss"])
    out = task.forward(model, batch)
    g_m = _param_grads(model, relative_misfit(out[:1].clamp(VMIN, VMAX), batch["seismic"][:1]).mean())
    assert g_m.norm() > 0
    torch.testing.assert_close(g_w - g_0, weight * g_m, rtol=1e-3, atol=1e-3 * float((weight * g_m).abs().max()))
    # the ramp is the task's: at progress 0 with a warmup the term is computed but weighs nothing
    ramped = build_task(cfg_for("tiny_unet", converted, tmp_path / "r", *PHYSICS_COMMON, *physics, "physics.warmup=0.5"))
    terms = ramped.train_loss(out, batch, progress=0.0)
    assert terms["physics"] > 0 and torch.equal(terms["loss"], terms["supervised"])
    assert ramped.physics_weight(0.25) == pytest.approx(weight / 2) and ramped.physics_weight(0.9) == weight


def test_unlabeled_batches_train_through_the_task_extra_loss(converted, synthetic_competition, tmp_path):
    """data.unlabeled: the engine draws the task's extra batches every physics.unlabeled_every steps
    and logs each extra term; the unlabeled misfit and the cycle term both reach the weights."""
    unlabeled = [
        "physics.weight=100",
        "physics.warmup=0",
        "physics.samples=1",
        "physics.unlabeled_every=1",
        "physics.cycle_weight=0.1",
        f"data.unlabeled={synthetic_competition / 'test'}",
    ]
    cfg = cfg_for("tiny_unet", converted, tmp_path / "u", *PHYSICS_COMMON, *unlabeled)
    run = fit(cfg, fold=0, progress=False)
    (record,) = _records(run)
    for key in ("train_physics", "train_unlabeled_physics", "train_unlabeled_cycle", "train_unlabeled_loss"):
        assert np.isfinite(record[key]) and record[key] > 0, key
    assert record["train_unlabeled_loss"] == pytest.approx(
        100 * record["train_unlabeled_physics"] + 0.1 * record["train_unlabeled_cycle"], rel=1e-5
    )
    # the gradient of one unlabeled batch: the misfit's and the cycle term's each reach the model
    task = build_task(cfg)
    batch = next(iter(make_loader(task.extra_data().dataset, cfg, DistContext(), 0, train=True, batch_size=1)))
    torch.manual_seed(0)
    model = task.build_model().eval()
    no_cycle = build_task(cfg_for("tiny_unet", converted, tmp_path / "n", *PHYSICS_COMMON, *unlabeled, "physics.cycle_weight=0"))
    g_all = _param_grads(model, task.extra_loss(model, batch, progress=1.0)["loss"])
    g_misfit = _param_grads(model, no_cycle.extra_loss(model, batch, progress=1.0)["loss"])
    assert g_misfit.norm() > 0 and (g_all - g_misfit).norm() > 0


def test_unlabeled_without_a_physics_weight_is_one_line(synthetic_competition, tmp_path, capsys):
    from kagglekit.cli import main

    config = FWI_CONFIGS / "tiny_unet.yaml"
    assert main(["train", str(config), f"data.unlabeled={synthetic_competition / 'test'}", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"error: {config}: data.unlabeled:") and "physics.weight > 0" in err
    assert not (tmp_path / "tiny_unet").exists()  # nothing left behind
    # the physics keys moved out of the core train: section: an old key points to the new one
    assert main(["train", str(config), "train.physics_weight=100", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.physics_weight is now physics.weight" in err and "physics: section" in err
