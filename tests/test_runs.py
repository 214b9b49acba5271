"""Run folders: one owner of the layout, loading a run without its starting weights, the experiment table."""

import json
import shutil

import pandas as pd
import pytest
import torch

from kagglekit.cli import main
from kagglekit.config import load_config, save_config
from kagglekit.engine.checkpoint import load_checkpoint
from kagglekit.engine.experiments import experiment_rows, overrides_against
from kagglekit.engine.fit import fit
from kagglekit.engine.runs import RunFolder, RunFolderError, load_run, record_leaderboard_score
from kagglekit.errors import UserError
from tests.conftest import FWI_CONFIGS, ROOT


def tiny_cfg(converted, out_dir, *overrides):
    return load_config(FWI_CONFIGS / "tiny_inversionnet.yaml", [f"data.root={converted}", f"out_dir={out_dir}", *overrides])


@pytest.fixture(scope="module")
def trained(converted, tmp_path_factory):
    """A real tiny run (2 epochs, fold 0) in <tmp>/runs/tiny_inversionnet/fold0."""
    return fit(tiny_cfg(converted, tmp_path_factory.mktemp("trained") / "runs", "train.epochs=2"), fold=0, progress=False)


def test_run_folder_owns_the_layout(converted, tmp_path):
    cfg = tiny_cfg(converted, tmp_path / "runs")
    folder = RunFolder.of(cfg, 3)
    assert folder.path == tmp_path / "runs" / "tiny_inversionnet" / "fold3"
    assert (folder.config_name, folder.fold_name, folder.fold) == ("tiny_inversionnet", "fold3", 3)
    assert RunFolder.of(cfg, -1).path.name == "full" and RunFolder.of(cfg, -1).fold == -1
    names = [p.name for p in (folder.config_path, folder.best, folder.last, folder.metrics_path, folder.oof_path)]
    assert names == ["config.yaml", "best.pt", "last.pt", "metrics.jsonl", "oof.npy"]
    assert folder.oof_ids_path.name == "oof_ids.csv" and folder.leaderboard_path.name == "leaderboard.jsonl"
    with pytest.raises(UserError, match=r"elsewhere: not a run folder name"):
        _ = RunFolder(tmp_path / "elsewhere").fold
    with pytest.raises(UserError, match=r"no config\.yaml; not a run folder"):
        load_run(tmp_path / "runs" / "tiny_inversionnet" / "fold0")


def test_fit_writes_what_run_folder_reads(trained):
    folder = RunFolder(trained)
    records = folder.read_metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    best = load_checkpoint(folder.best)
    assert best["primary_metric"] == "mae"
    assert best["metrics"]["mae"] == min(r["valid/mae"] for r in records)
    assert folder.config() == load_config(folder.config_path)


def test_epoch_metrics_replace_a_killed_sessions_records(tmp_path):
    # a session killed after writing epoch 3's line but before last.pt: resumed from epoch 2, it writes 3 again
    folder = RunFolder(tmp_path / "runs" / "c" / "fold0")
    folder.path.mkdir(parents=True)
    for epoch in (1, 2, 3):
        folder.write_epoch_metrics({"epoch": epoch, "session": 1})
    folder.write_epoch_metrics({"epoch": 3, "session": 2})
    assert [(r["epoch"], r["session"]) for r in folder.read_metrics()] == [(1, 1), (2, 1), (3, 2)]
    folder.metrics_path.write_text('{"epoch": 1}\n{"epoch": 2, "valid/ma')
    with pytest.raises(UserError, match=r"metrics\.jsonl: line 2 is not JSON"):
        folder.read_metrics()


def test_run_whose_starting_weights_are_gone_resumes_loads_and_predicts(converted, trained, synthetic_competition, tmp_path):
    # a pseudo-label round: the child starts from its parent's best.pt, then the parent is deleted
    parent = tmp_path / "parent"
    shutil.copytree(trained, parent)
    child_cfg = tiny_cfg(
        converted, tmp_path / "runs", "name=child_pl1", "train.epochs=2", f"model.pretrained={parent / 'best.pt'}"
    )
    child = fit(child_cfg, fold=0, progress=False, stop_after=1)
    assert load_config(child / "config.yaml").model.pretrained == str(parent / "best.pt")
    shutil.rmtree(parent)

    fit(child_cfg, fold=0, resume=True, progress=False)  # e.g. the next Kaggle session of the training kernel
    assert [r["epoch"] for r in RunFolder(child).read_metrics()] == [1, 2]
    run = load_run(child)
    assert run.cfg.model.pretrained is None and run.cfg.name == "child_pl1"
    best = load_checkpoint(child / "best.pt")["model"]
    assert all(torch.equal(v, best[k]) for k, v in run.model.state_dict().items())
    _, valid = run.task.datasets(0)
    with torch.no_grad():
        out = run.task.forward(run.model, {"seismic": valid[0]["seismic"][None].float()})
    assert out.shape == (1, 70, 70) and torch.isfinite(out).all()
    # the same through the command line: `fwi predict` of the child needs only its own folder
    out = tmp_path / "pred"
    args = ["fwi", "predict", str(child), "--test-dir", str(synthetic_competition / "test"), "--out", str(out)]
    assert main([*args, "--workers", "0", "--device", "cpu"]) == 0
    assert (out / "child_pl1.npy").is_file()


def test_checkpoint_that_does_not_fit_its_config_is_one_line(trained, tmp_path, capsys):
    run = tmp_path / "runs" / "tiny_inversionnet" / "fold0"
    shutil.copytree(trained, run)
    cfg = load_config(run / "config.yaml", ["model.kwargs.width=16"])
    save_config(cfg, run / "config.yaml")
    with pytest.raises(RunFolderError) as err:
        load_run(run)
    message = str(err.value)
    assert "\n" not in message and str(run / "best.pt") in message and str(run / "config.yaml") in message
    assert "of another shape" in message


def test_overrides_are_against_the_config_file():
    cfg = load_config(FWI_CONFIGS / "tiny_unet.yaml", ["train.lr=0.01", "model.kwargs.encoder=resnet34", "name=other"])
    base = load_config(FWI_CONFIGS / "tiny_unet.yaml")
    diff = overrides_against(cfg.model_dump(mode="json"), base.model_dump(mode="json"))
    assert diff == ["model.kwargs.encoder=resnet34", "train.lr=0.01"]


def test_runs_table_of_a_trained_run(trained, tmp_path, capsys):
    runs_dir = trained.parent.parent
    records = RunFolder(trained).read_metrics()
    best = min(records, key=lambda r: r["valid/mae"])

    (row,) = experiment_rows(runs_dir, ROOT / "configs")
    assert (row.config, row.folds, row.best_epoch, row.metric) == ("tiny_inversionnet", "0", str(best["epoch"]), "mae")
    assert row.cv == pytest.approx(best["valid/mae"])
    assert row.train_min == pytest.approx(records[-1]["elapsed_s"] / 60)
    assert row.base == str(FWI_CONFIGS / "tiny_inversionnet.yaml")
    assert row.overrides.split() == [f"data.root={load_config(trained / 'config.yaml').data.root}"]
    assert row.lb is None and row.lb_time == ""

    written = record_leaderboard_score([runs_dir / "tiny_inversionnet"], "waveform-inversion", 61.5, "sub.csv", "first try")
    assert written == [trained / "leaderboard.jsonl"]
    record_leaderboard_score([trained], "waveform-inversion", None, "sub2.csv", "score pending")
    lines = [json.loads(line) for line in (trained / "leaderboard.jsonl").read_text().splitlines()]
    assert [(r["score"], r["message"]) for r in lines] == [(61.5, "first try"), (None, "score pending")]
    (row,) = experiment_rows(runs_dir, ROOT / "configs")
    assert row.lb == 61.5 and row.lb_message == "first try"  # the latest scored submission

    assert main(["runs", str(runs_dir), "--configs", str(ROOT / "configs")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| config | folds | best epoch | metric | CV | train min | overrides | LB |"
    assert table[2].startswith(f"| tiny_inversionnet | 0 | {best['epoch']} | mae | {best['valid/mae']:.4f} |")
    assert table[2].endswith("| 61.5 |")

    assert main(["runs", str(runs_dir), "--configs", str(ROOT / "configs"), "--csv", "--folds"]) == 0
    frame = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert list(frame["config"]) == ["tiny_inversionnet/fold0"] and frame["cv"].iloc[0] == pytest.approx(best["valid/mae"])


def test_runs_table_counts_unfinished_folds_and_compares_with_task_defaults(converted, trained, tmp_path):
    runs_dir = tmp_path / "runs"
    shutil.copytree(trained, runs_dir / "tiny_inversionnet" / "fold0")
    paused = fit(tiny_cfg(converted, runs_dir, "train.epochs=3"), fold=1, progress=False, stop_after=1)
    renamed = fit(tiny_cfg(converted, runs_dir, "name=no_such_file", "train.epochs=1"), fold=0, progress=False)
    rows = {r.config: r for r in experiment_rows(runs_dir, ROOT / "configs")}
    assert rows["tiny_inversionnet"].folds == "0,1 (1/3)"
    assert rows["tiny_inversionnet"].overrides.endswith("(folds differ)")  # fold 1 trains 3 epochs
    assert rows["no_such_file"].base == "task defaults"
    assert "model.kwargs.width=8" in rows["no_such_file"].overrides.split()
    assert paused.name == "fold1" and renamed.parent.name == "no_such_file"
    with pytest.raises(UserError, match="runs folder not found"):
        experiment_rows(tmp_path / "missing")


def test_runs_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["runs", "--help"])
    text = capsys.readouterr().out
    assert "(default: runs)" in text and "(default: configs)" in text


def test_a_run_saved_before_the_physics_section_still_loads(tmp_path):
    """config.yaml of an older kagglekit holds train.physics_*: a run folder carries them over,
    a user's config file with the old keys is still refused with the rename."""
    import yaml

    from kagglekit.config import ConfigError

    data = yaml.safe_load((ROOT / "configs/fwi/tiny_unet.yaml").read_text())
    data["name"] = "old"
    data.setdefault("train", {}).update({"physics_weight": 5.0, "physics_samples": 3, "cycle_weight": 0.0})
    run = tmp_path / "old" / "fold0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    cfg = RunFolder(run).config()
    assert (cfg.physics.weight, cfg.physics.samples) == (5.0, 3)
    with pytest.raises(ConfigError, match="train.physics_weight is now physics.weight"):
        load_config(run / "config.yaml")
