"""A third competition is one new package: here a regression task on sklearn's diabetes data,
defined in this file, registered at run time, configured (with a config section of its own),
trained by the real engine with loss terms and an extra data stream of its own, and driven from
the real command line, with no edit to the engine, the config core or the CLI core."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import Field
from sklearn.datasets import load_diabetes
from torch.utils.data import Dataset

from kagglekit.cli import command, main
from kagglekit.config import ConfigError, Strict, config_from_dict
from kagglekit.engine.checkpoint import load_checkpoint
from kagglekit.engine.fit import fit
from kagglekit.engine.task import TASKS, ExtraData, TaskSpec, register_task
from kagglekit.folds import assign_folds, fold_signature, split_for_fold
from kagglekit.losses import LOSSES
from kagglekit.registry import Registry

MODELS = Registry("diabetes model")


@MODELS.register("mlp")
class MLP(torch.nn.Module):
    def __init__(self, hidden: int = 32, in_features: int = 10):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x):
        return 152.0 + 77.0 * self.net(x).squeeze(-1)  # (B, 10) -> (B,) disease progression


class DiabetesData(Strict):
    n_folds: int = Field(5, ge=2)
    fold_seed: int = 0


class Shrink(Strict):
    """The task's own `shrink:` section: an extra loss on unlabeled rows that pulls their
    predictions toward the training mean (a shrinkage prior; weight 0 = off)."""

    weight: float = Field(0.0, ge=0.0)
    every: int = Field(1, ge=1, description="one unlabeled batch every N training batches")


class Rows(Dataset):
    def __init__(self, x, y, rows):
        self.x, self.y, self.rows = x, y, rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        k = int(self.rows[i])
        return {"x": self.x[k], "y": self.y[k], "index": torch.tensor(k)}


class DiabetesTask:
    primary_metric = "mae"
    greater_is_better = False
    eval_keys = ("y", "index")

    def __init__(self, cfg):
        self.cfg = cfg
        data = load_diabetes()
        x = (data.data - data.data.mean(0)) / data.data.std(0)
        self.x, self.y = torch.tensor(x, dtype=torch.float32), torch.tensor(data.target, dtype=torch.float32)
        bins = np.digitize(data.target, np.quantile(data.target, [0.25, 0.5, 0.75]))  # stratify by target quartile
        self.folds = assign_folds(bins, n_folds=cfg.data.n_folds, seed=cfg.data.fold_seed)
        self.loss_fn = LOSSES.build(cfg.train.loss)

    def datasets(self, fold):
        train, valid = split_for_fold(self.folds, fold)
        return Rows(self.x, self.y, train), Rows(self.x, self.y, valid)

    def fold_signature(self):
        return fold_signature(np.arange(len(self.folds)), self.folds)

    def build_model(self):
        return MODELS.build(self.cfg.model.name, **self.cfg.model.kwargs)

    def forward(self, model, batch):
        return model(batch["x"])

    def loss(self, output, batch):
        return {"loss": self.loss_fn(output, batch["y"]), "mae": (output - batch["y"]).abs().mean().detach()}

    def extra_data(self):
        every_row = Rows(self.x, torch.zeros_like(self.y), np.arange(len(self.y)))  # inputs only: no labels
        return ExtraData("unlabeled", every_row, batch_size=16, every=self.cfg.shrink.every)

    def extra_loss(self, model, batch, progress):
        shrink = (self.forward(model, batch) - 152.0).square().mean() / 77.0**2  # (B,) -> ()
        return {"loss": self.cfg.shrink.weight * shrink, "shrink": shrink, "progress": torch.tensor(progress)}

    def evaluate(self, outputs, keys):
        return {"mae": float((outputs - keys["y"]).abs().mean())}

    def oof(self, outputs, keys):
        return outputs.numpy(), pd.DataFrame({"index": keys["index"].numpy()})

    def report(self, metrics):
        return f"MAE {metrics['mae']:.1f}"


def _info(args):
    print(f"diabetes: {len(load_diabetes().target)} rows, {args.folds} folds")


def _commands(commands):
    info = command(commands, "info", "describe the data")
    info.add_argument("--folds", type=int, default=5, help="number of folds")
    info.set_defaults(func=_info)


SPEC = TaskSpec(
    name="diabetes",
    help="regression on sklearn's diabetes data",
    data_config=DiabetesData,
    build=DiabetesTask,
    models=MODELS,
    defaults={"train": {"loss": "mse", "ema_decay": None}},
    add_commands=_commands,
    sections={"shrink": Shrink},
    moved={"train.shrink_weight": "shrink.weight"},
)


@pytest.fixture
def diabetes_task():
    register_task(SPEC)
    yield SPEC
    TASKS.unregister("diabetes")


def test_third_task_trains_through_fit(diabetes_task, tmp_path):
    cfg = config_from_dict(
        {
            "name": "diabetes_mlp",
            "task": "diabetes",
            "model": {"name": "mlp"},
            "out_dir": str(tmp_path),
            "train": {"epochs": 40, "batch_size": 32, "lr": 1e-2, "weight_decay": 0.0},
        }
    )
    assert type(cfg.data) is DiabetesData and cfg.train.loss == "mse" and cfg.train.ema_decay is None  # the task's defaults
    run = fit(cfg, fold=0, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    task = DiabetesTask(cfg)
    train, valid = split_for_fold(task.folds, 0)
    constant = float((task.y[valid] - task.y[train].mean()).abs().mean())  # predicting the training mean
    best = min(r["valid/mae"] for r in records)
    assert best < 0.8 * constant, (best, constant)  # linear models reach ~0.67x here
    assert len(np.load(run / "oof.npy")) == len(valid)


def test_third_task_declares_its_loss_terms_section_and_extra_data(diabetes_task, tmp_path):
    """Every term the task returns is logged (train_mae, train_unlabeled_*); the extra stream's loss
    is back-propagated: against a control with shrink.weight=0 (the same batches, forward passes
    and RNG) only the weighted run's weights differ; the task sees the training progress."""
    base = {"name": "d", "task": "diabetes", "model": {"name": "mlp"}, "train": {"epochs": 3, "batch_size": 32, "lr": 1e-2}}
    runs, records = {}, {}
    for weight in (0.0, 1.0):
        cfg = config_from_dict({**base, "out_dir": str(tmp_path / str(weight)), "shrink": {"weight": weight, "every": 2}})
        assert type(cfg.shrink) is Shrink and cfg.shrink.weight == weight
        runs[weight] = fit(cfg, fold=0, progress=False)
        records[weight] = [json.loads(line) for line in (runs[weight] / "metrics.jsonl").read_text().splitlines()]
    for row in records[1.0]:
        assert {"train_mae", "train_unlabeled_loss", "train_unlabeled_shrink", "train_unlabeled_progress"} <= set(row)
        assert row["train_unlabeled_loss"] == pytest.approx(row["train_unlabeled_shrink"], rel=1e-6)
        assert row["train_unlabeled_shrink"] > 0
    assert all(row["train_unlabeled_loss"] == 0 for row in records[0.0])
    progress = [row["train_unlabeled_progress"] for row in records[1.0]]
    assert 0 <= progress[0] < progress[1] < progress[2] <= 1
    a, b = (load_checkpoint(runs[w] / "last.pt")["model"] for w in (0.0, 1.0))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # the task's section is strict and its moved key points to the new place, both naming the file
    with pytest.raises(ConfigError, match=r"^d\.yaml: invalid config\n  shrink\.wieght: Extra inputs"):
        config_from_dict({**base, "shrink": {"wieght": 1}}, source="d.yaml")
    with pytest.raises(ConfigError, match=r"^d\.yaml: train\.shrink_weight is now shrink\.weight \(moved to the 'diabetes'"):
        config_from_dict(base, source="d.yaml", overrides=["train.shrink_weight=1"])


def test_a_task_section_may_not_replace_a_core_one(tmp_path):
    spec = TaskSpec(
        name="clash", help="x", data_config=DiabetesData, build=DiabetesTask, models=MODELS, sections={"train": Shrink}
    )
    register_task(spec)
    try:
        with pytest.raises(TypeError, match=r"sections \['train'\] would replace core config sections"):
            config_from_dict({"name": "c", "task": "clash", "model": {"name": "mlp"}})
    finally:
        TASKS.unregister("clash")


def test_third_task_on_the_command_line(diabetes_task, tmp_path, capsys):
    assert main(["diabetes", "info", "--folds", "3"]) == 0
    assert "442 rows, 3 folds" in capsys.readouterr().out
    assert main(["models", "--task", "diabetes"]) == 0
    assert "| diabetes | mlp | 0.00 |" in capsys.readouterr().out
    cfg = tmp_path / "d.yaml"
    cfg.write_text("task: diabetes\nmodel: {name: mlp}\ndata: {n_folds: 4}\ntrain: {epochs: 2}\n")
    assert main(["train", str(cfg), "--fold", "3", f"out_dir={tmp_path / 'runs'}"]) == 0
    assert (tmp_path / "runs" / "d" / "fold3" / "best.pt").is_file()
    cfg.write_text("task: diabetes\nmodel: {name: mlp}\ndata: {n_folds: 4, flip_prob: 0.5}\n")
    assert main(["train", str(cfg)]) == 2
    assert "data.flip_prob: Extra inputs are not permitted" in capsys.readouterr().err


def test_cli_basics(capsys):
    from kagglekit import __version__

    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("train", "models", "fwi", "vision"))
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"kagglekit {__version__}"
    assert main(["models", "--task", "fwi"]) == 0
    assert "| fwi | caformer | 100.78 |" in capsys.readouterr().out


def test_every_option_has_help_and_shows_its_default():
    from kagglekit.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if action.choices and isinstance(action.choices, dict):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif action.dest != "help":
                yield path, parser, action

    for path, parser, action in walk(build_parser(), "kagglekit"):
        assert action.help, f"{path}: {action.dest} has no help"
        text = parser.formatter_class("x")._get_help_string(action)
        if action.option_strings and action.default not in (None, False) and action.default != "==SUPPRESS==":
            assert "default" in text, f"{path}: {action.dest}"


def test_a_bad_test_file_in_a_dataloader_worker_is_one_line(tmp_path):
    """A user error raised inside a DataLoader worker reaches the terminal as one line, not a traceback."""
    test = tmp_path / "test"
    test.mkdir()
    np.save(test / "0123456789.npy", np.zeros((5, 1000, 70), np.float32))
    np.save(test / "abcdefabcd.npy", np.zeros((5, 999, 70), np.float32))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: r\ntask: fwi\nmodel: {name: inversionnet, kwargs: {width: 4}}\n")
    from kagglekit.engine.checkpoint import save_checkpoint
    from kagglekit.fwi.models import MODELS as FWI_MODELS

    save_checkpoint({"model": FWI_MODELS.build("inversionnet", width=4).state_dict()}, run / "best.pt")
    cmd = [
        sys.executable,
        "-m",
        "kagglekit.cli",
        "fwi",
        "predict",
        str(run),
        "--test-dir",
        str(test),
        "--out",
        str(tmp_path / "pred"),
        "--workers",
        "2",
        "--batch-size",
        "1",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and "%|" not in line and "it/s" not in line]
    assert lines == [f"error: {test / 'abcdefabcd.npy'}: expected (5, 1000, 70) float32, found (5, 999, 70) float32"], (
        result.stderr
    )
    debug = subprocess.run([cmd[0], "-m", "kagglekit.cli", "--debug", *cmd[3:]], capture_output=True, text=True, timeout=300)
    assert "Traceback" in debug.stderr
