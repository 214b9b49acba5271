"""A checkpoint never runs code: every load is `weights_only=True`, last.pt is plain data, and a
planted or old-format file is one line that says what it is."""

import os
import random
import shutil

import numpy as np
import pytest
import torch

from kagglekit.cli import main
from kagglekit.config import load_config
from kagglekit.engine.checkpoint import (
    CheckpointError,
    OldCheckpointError,
    UnsafeCheckpointError,
    convert_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from kagglekit.engine.fit import _rng_state, _set_rng_state, fit
from kagglekit.engine.runs import RunFolder, load_run
from tests.conftest import FWI_CONFIGS


class Planted:
    """Unpickling this runs `touch <marker>` (what a malicious best.pt does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def overrides(converted, out_dir):
    return [f"data.root={converted}", f"out_dir={out_dir}", "train.epochs=2"]


@pytest.fixture(scope="module")
def paused(converted, tmp_path_factory):
    """A tiny run paused after epoch 1 of 2 (best.pt and last.pt written); tests copy it."""
    out = tmp_path_factory.mktemp("paused") / "runs"
    return fit(
        load_config(FWI_CONFIGS / "tiny_inversionnet.yaml", overrides(converted, out)), fold=0, progress=False, stop_after=1
    )


def copy_run(paused, tmp_path) -> RunFolder:
    folder = RunFolder(tmp_path / "runs" / paused.parent.name / paused.name)
    shutil.copytree(paused, folder.path)
    return folder


def test_planted_best_pt_is_refused_by_predict_and_never_runs(paused, synthetic_competition, tmp_path, capsys):
    folder = copy_run(paused, tmp_path)
    marker = tmp_path / "MARKER"
    torch.save({"model": Planted(marker), "epoch": 0, "metrics": {}}, folder.best)
    with pytest.raises(UnsafeCheckpointError, match=r"best\.pt: refused: it pickles posix\.system"):
        load_run(folder.path)
    args = ["fwi", "predict", str(folder.path), "--test-dir", str(synthetic_competition / "test"), "--out", str(tmp_path / "p")]
    assert main([*args, "--workers", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err and str(folder.best) in err
    assert not marker.exists()


def test_planted_last_pt_is_refused_by_resume_and_never_runs(paused, converted, tmp_path, capsys):
    folder = copy_run(paused, tmp_path)
    marker = tmp_path / "MARKER"
    state = load_checkpoint(folder.last)
    torch.save({**state, "rng": {"torch": Planted(marker)}}, folder.last)  # a real last.pt with one poisoned entry
    cfg = load_config(FWI_CONFIGS / "tiny_inversionnet.yaml", overrides(converted, tmp_path / "runs"))
    with pytest.raises(UnsafeCheckpointError, match=r"last\.pt: refused"):
        fit(cfg, fold=0, resume=True, progress=False)
    assert main(["train", str(FWI_CONFIGS / "tiny_inversionnet.yaml"), *overrides(converted, tmp_path / "runs"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last.pt: refused" in err
    # nor does the converter let it through
    with pytest.raises(UnsafeCheckpointError):
        convert_checkpoint(folder.last)
    assert not marker.exists()


def test_last_pt_is_plain_data_and_restores_every_rng(paused, tmp_path):
    torch.load(RunFolder(paused).last, weights_only=True)  # no allow-list needed
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # a cached gaussian is part of numpy's state
    save_checkpoint({"rng": _rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(), np.random.rand(3).tolist(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    _set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.normal(), np.random.rand(3).tolist()) == expected[:3]
    assert torch.equal(torch.rand(3), expected[3])


def test_numpy_values_are_saved_as_plain_data(tmp_path):
    save_checkpoint(
        {"metrics": {"mae": np.float64(3.5), "n": np.int64(4)}, "keys": np.arange(3, dtype=np.uint32)}, tmp_path / "c.pt"
    )
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert type(state["metrics"]["mae"]) is float and type(state["metrics"]["n"]) is int
    assert torch.equal(state["keys"], torch.arange(3))


def test_old_format_last_pt_says_how_to_convert_and_resumes_after(paused, converted, tmp_path, capsys):
    folder = copy_run(paused, tmp_path)
    state = load_checkpoint(folder.last)
    # as kagglekit wrote it before safe loading: numpy's RNG state as numpy objects, numpy scalars
    state["rng"] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    state["best_score"] = np.float64(state["best_score"])
    torch.save(state, folder.last)
    cfg = load_config(FWI_CONFIGS / "tiny_inversionnet.yaml", overrides(converted, tmp_path / "runs"))
    with pytest.raises(OldCheckpointError, match=rf"convert it once with `kagglekit convert-checkpoint {folder.last}`"):
        fit(cfg, fold=0, resume=True, progress=False)

    assert main(["convert-checkpoint", str(folder.last), str(folder.best)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{folder.last}: converted to plain data", f"{folder.best}: loads safely already, left as it is"]
    torch.load(folder.last, weights_only=True)
    fit(cfg, fold=0, resume=True, progress=False)
    assert [r["epoch"] for r in folder.read_metrics()] == [1, 2]


def test_unreadable_checkpoint_is_one_line(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "best.pt")
    assert "\n" not in str(err.value) and str(tmp_path / "best.pt") in str(err.value)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"expected a kagglekit checkpoint \(a dict\), found list"):
        load_checkpoint(tmp_path / "list.pt")
