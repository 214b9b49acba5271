"""Edges a new user hits (issue 18, "others like them"): files that are not what they claim, counts
and budgets out of range, models that cannot be built. Each is one line naming the file or the
argument, refused before any work, never an unsafe load, nothing left behind."""

import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from kagglekit.cli import main
from kagglekit.engine.checkpoint import CheckpointError, UnsafeCheckpointError, load_checkpoint
from kagglekit.errors import UserError
from kagglekit.fwi.predictions import Predictions
from kagglekit.pretrained import load_pretrained
from kagglekit.registry import BadArgumentsError
from tests.conftest import FWI_CONFIGS, make_run

IDS = ["00000abc12", "0000012345", "0000fff000"]


class Planted:
    """Unpickling this runs a shell command: what a safe load must never do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def one_line(capsys, argv: list[str]) -> str:
    """A refusal through the real command line: exit 2, one line on stderr, no traceback."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _pred_dir(tmp_path, name: str, content: bytes | None = None) -> os.PathLike:
    folder = tmp_path / name
    folder.mkdir()
    if content is None:
        np.save(folder / "p.npy", np.full((3, 70, 70), 3000, np.float32))
    else:
        (folder / "p.npy").write_bytes(content)
    (folder / "ids.txt").write_text("\n".join(IDS) + "\n")
    return folder / "p.npy"


# --- prediction files that are not .npy arrays: named for what they are, never "load it unsafely" ----


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"", "found an empty file"),
        (pickle.dumps([1, 2, 3]), "found a pickle"),
        (b"id,value\n1,2\n", "found a file starting b'id,val'"),
    ],
)
def test_prediction_file_that_is_no_npy(tmp_path, content, found):
    path = _pred_dir(tmp_path, "p", content)
    with pytest.raises(UserError) as err:
        Predictions.read(path)
    message = str(err.value)
    assert message.startswith(f"{path}: expected a .npy array, {found}")
    assert "allow_pickle" not in message and "unsafely" not in message


def test_prediction_file_of_python_objects(tmp_path):
    path = _pred_dir(tmp_path, "p", b"")
    np.save(path, np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="found an array of Python objects") as err:
        Predictions.read(path)
    assert "unsafely" not in str(err.value)


def test_truncated_prediction_file(tmp_path):
    path = _pred_dir(tmp_path, "p")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="not a readable .npy array: truncated"):
        Predictions.read(path)


# --- checkpoints and starting weights -----------------------------------------------------------


def test_raw_pickle_checkpoint_refused_quietly(tmp_path):
    """A plain pickle (not torch's zip): refused without torch's protocol warning, and worded."""
    path, marker = tmp_path / "last.pt", tmp_path / "ran"
    path.write_bytes(pickle.dumps(Planted(marker)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with pytest.raises(UnsafeCheckpointError) as err:
            load_checkpoint(path)
    assert str(err.value).startswith(f"{path}: refused: it holds pickle instructions that are not weights")
    assert not marker.exists()


def test_empty_checkpoint_says_empty(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"last.pt: expected a checkpoint, found an empty file \(0 bytes\)"):
        load_checkpoint(tmp_path / "last.pt")


def test_checkpoint_through_a_link_names_the_real_file(tmp_path):
    """Kernels link staged weights into run folders: the refusal names the staged file."""
    staged, marker = tmp_path / "staged.pt", tmp_path / "ran"
    torch.save({"model": Planted(marker)}, staged)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").symlink_to(staged)
    with pytest.raises(UnsafeCheckpointError, match=rf"^{staged}: refused: it pickles posix.system"):
        load_checkpoint(tmp_path / "run" / "best.pt")
    assert not marker.exists()


def test_planted_pretrained_weights_refused_without_unsafe_advice(tmp_path):
    """model.pretrained loads safely and the refusal never suggests weights_only=False."""
    path, marker = tmp_path / "backbone.pt", tmp_path / "ran"
    torch.save({"state_dict": Planted(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_pretrained(torch.nn.Linear(2, 2), path)
    assert str(err.value).startswith(f"{path}: refused: it pickles posix.system")
    assert "weights_only" not in str(err.value) and "False" not in str(err.value)
    assert not marker.exists()


# --- configs and models -------------------------------------------------------------------------


def test_yaml_error_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("task: fwi\nmodel: [1, 2\n")
    err = one_line(capsys, ["train", str(tmp_path / "bad.yaml")])
    assert f"{tmp_path / 'bad.yaml'}: not valid YAML at line 3, column 1: expected ',' or ']'" in err


def test_model_arguments_that_do_not_fit_together():
    from kagglekit.fwi.models import MODELS

    with pytest.raises(BadArgumentsError, match=r"fwi model 'unet' cannot be built from .*Model depth is 4"):
        MODELS.build("unet", encoder="resnet18", encoder_depth=4, decoder_channels=[32, 16, 16])


def test_predict_with_a_config_its_model_cannot_be_built_from(tmp_path, capsys):
    run = make_run(tmp_path / "runs", "fwi/tiny_unet")
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("encoder_depth: 3", "encoder_depth: 4"))
    (tmp_path / "test").mkdir()
    np.save(tmp_path / "test" / f"{IDS[0]}.npy", np.zeros((5, 1000, 70), np.float32))
    argv = ["fwi", "predict", str(run), "--test-dir", str(tmp_path / "test"), "--out", str(tmp_path / "pred"), "--device", "cpu"]
    err = one_line(capsys, argv)
    assert "cannot be built from" in err and "Model depth is 4" in err
    assert not (tmp_path / "pred").exists()


# --- counts, budgets and folds: refused while parsing, before any output ---------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fwi", "convert", "SRC", "OUT", "--folds", "1"], "argument --folds: expected an integer >= 2, got 1"),
        (["fwi", "convert", "SRC", "OUT", "--holdout", "1"], "argument --holdout: expected a fraction in [0, 1), got 1.0"),
        (["fwi", "folds", "CONV", "--folds", "0"], "argument --folds: expected an integer >= 2, got 0"),
        (["fwi", "predict", "RUN", "--test-dir", "T", "--out", "O", "--workers", "-1"], "--workers: expected an integer >= 0"),
        (["fwi", "refine", "P", "--test-dir", "T", "--out", "O", "--minutes", "inf"], "--minutes: expected a finite number > 0"),
        (["fwi", "pseudo-label", "RUN", "--test-dir", "T", "--out", "O", "--minutes", "0"], "expected a finite number > 0"),
        (["fwi", "pseudo-label", "RUN", "--test-dir", "T", "--out", "O", "--refine-minutes", "-1"], "a finite number >= 0"),
        (["fwi", "pseudo-label", "RUN", "--test-dir", "T", "--out", "O", "--lr-scale", "0"], "--lr-scale: expected a finite"),
        (["fwi", "cv", "RUN", "--worst", "-1"], "argument --worst: expected an integer >= 0, got -1"),
        (["train", "CFG", "--stop-after", "0"], "argument --stop-after: expected a positive integer, got 0"),
        (["kaggle", "render-kernel", "fwi-submission", "--out", "O", "--refine-minutes", "-1"], "a finite number >= 0, got -1.0"),
        (["kaggle", "render-kernel", "fwi-submission", "--out", "O", "--batch-size", "0"], "a positive integer, got 0"),
        (["kaggle", "render-kernel", "fwi-submission", "--out", "O", "--refine-iters", "0"], "a positive integer, got 0"),
        (["kaggle", "render-kernel", "fwi-training", "--out", "O", "--epochs-per-session", "-1"], "an integer >= 0, got -1"),
    ],
)
def test_counts_and_budgets_refused_while_parsing(tmp_path, capsys, argv, expected):
    argv = [str(tmp_path / a) if a in ("OUT", "O") else a for a in argv]
    assert expected in one_line(capsys, argv)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a .partial folder


# --- values on another scale ---------------------------------------------------------------------


def test_ensemble_refuses_a_member_in_km_per_s(tmp_path):
    from kagglekit.fwi.ensemble import EnsembleError, read_members

    good = _pred_dir(tmp_path, "m")
    km = _pred_dir(tmp_path, "km")
    np.save(km, np.full((3, 70, 70), 3.0, np.float32))
    with pytest.raises(EnsembleError, match=r"km/p.npy: expected velocities in m/s .* median of 3 \(km/s\?\)"):
        read_members([good, km])
    assert len(read_members([good, good])) == 2


def test_unit_hint_does_not_call_a_hundredth_km_per_s(tmp_path, capsys):
    from kagglekit.fwi.synthetic import write_sample_submission

    write_sample_submission(tmp_path / "sample.csv", IDS)
    path = _pred_dir(tmp_path, "dm")
    np.save(path, np.full((3, 70, 70), 30.0, np.float32))
    err = one_line(
        capsys, ["fwi", "write-csv", str(path), "--sample-submission", str(tmp_path / "sample.csv"), "--out", str(tmp_path / "s")]
    )
    assert "median 30: not m/s?" in err and "km/s" not in err


# --- pseudo-label checks its labels before any work ----------------------------------------------


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (
            lambda p: np.save(p, np.full((3, 70, 69), 3000, np.float32)),
            "expected (N, 70, 70) velocity maps, found shape (3, 70, 69)",
        ),
        (lambda p: p.write_bytes(pickle.dumps([1])), "expected a .npy array, found a pickle"),
    ],
)
def test_pseudo_label_refuses_bad_labels_before_predicting(tmp_path, capsys, write, expected):
    run = make_run(tmp_path / "runs", "fwi/tiny_unet")
    write(tmp_path / "labels.npy")
    (tmp_path / "ids.csv").write_text("id\n" + "\n".join(IDS) + "\n")
    argv = ["fwi", "pseudo-label", str(run), "--test-dir", str(tmp_path), "--out", str(tmp_path / "round"), "--device", "cpu"]
    err = one_line(capsys, [*argv, "--labels", str(tmp_path / "labels.npy"), "--label-ids", str(tmp_path / "ids.csv")])
    assert err.startswith(f"error: {tmp_path / 'labels.npy'}: {expected}")
    assert not (tmp_path / "round").exists()


def test_predict_stops_at_a_pickled_test_file_and_leaves_no_out_folder(tmp_path, capsys):
    run = make_run(tmp_path / "runs", "fwi/tiny_unet")
    (tmp_path / "test").mkdir()
    np.save(tmp_path / "test" / f"{IDS[0]}.npy", np.zeros((5, 1000, 70), np.float32))
    (tmp_path / "test" / f"{IDS[1]}.npy").write_bytes(pickle.dumps(Planted(tmp_path / "ran")))
    argv = ["fwi", "predict", str(run), "--test-dir", str(tmp_path / "test"), "--out", str(tmp_path / "pred"), "--device", "cpu"]
    err = one_line(capsys, [*argv, "--workers", "0"])
    assert f"{tmp_path / 'test' / IDS[1]}.npy: expected a .npy array, found a pickle (never unpickled)" in err
    assert not (tmp_path / "pred").exists() and not (tmp_path / "ran").exists()


def test_stage_weights_refuses_weights_that_do_not_fit_their_config(tmp_path, capsys):
    """Found when staging, not on Kaggle after the upload; nothing staged, no .partial left."""
    run = make_run(tmp_path / "runs", "fwi/tiny_unet")
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("- 16\n", "- 8\n"))
    err = one_line(capsys, ["kaggle", "stage-weights", str(run), "--out", str(tmp_path / "staged")])
    assert f"{run / 'best.pt'}: its weights do not fit the 'TimePooledUnet' model that {config} builds" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_convert_refusal_leaves_no_partial_folder(tmp_path):
    from kagglekit.fwi.data.convert import convert
    from kagglekit.fwi.data.readers import DataError

    family = tmp_path / "train_samples" / "FlatVel_A"
    (family / "data").mkdir(parents=True)
    (family / "model").mkdir()
    seismic = np.zeros((2, 5, 1000, 70), np.float32)
    seismic[1, 0, 0, 0] = np.nan
    np.save(family / "data" / "data1.npy", seismic)
    np.save(family / "model" / "model1.npy", np.full((2, 1, 70, 70), 3000, np.float32))
    with pytest.raises(DataError, match="data1.npy"):
        convert(tmp_path / "train_samples", tmp_path / "conv", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_samples"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("index.csv", "garbage\n1\n", "index.csv: expected the columns ['sample_id', 'family', 'shard', 'row', 'fold'], found"),
        ("manifest.json", '{"a":', "manifest.json: not valid JSON"),
    ],
)
def test_damaged_converted_folder_is_one_line(converted, tmp_path, capsys, name, content, expected):
    import shutil

    root = tmp_path / "conv"
    shutil.copytree(converted, root)
    (root / name).write_text(content)
    err = one_line(capsys, ["train", str(FWI_CONFIGS / "tiny_unet.yaml"), f"data.root={root}", f"out_dir={tmp_path / 'runs'}"])
    assert f"{root}/{expected}" in err
    assert not (tmp_path / "runs").exists()


def _dead_pid() -> int:
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_predict_and_write_csv_remove_what_a_killed_run_left(tmp_path, capsys):
    """kill -9 during an atomic write leaves `.NAME.tmp-<pid>` (a whole prediction file): the next run removes it."""
    from kagglekit.fwi.synthetic import write_sample_submission

    run = make_run(tmp_path / "runs", "fwi/tiny_unet")
    (tmp_path / "test").mkdir()
    np.save(tmp_path / "test" / f"{IDS[0]}.npy", np.zeros((5, 1000, 70), np.float32))
    pred, subs = tmp_path / "pred", tmp_path / "subs"
    pred.mkdir()
    subs.mkdir()
    (pred / f".tiny_unet__fold0.npy.tmp-{_dead_pid()}").write_bytes(b"half a file")
    (subs / f".tiny_unet.csv.tmp-{_dead_pid()}").write_text("half a csv")
    argv = ["fwi", "predict", str(run), "--test-dir", str(tmp_path / "test"), "--out", str(pred), "--device", "cpu"]
    assert main([*argv, "--workers", "0"]) == 0
    assert not list(pred.glob(".*tmp-*")) and (pred / "tiny_unet.npy").is_file()
    write_sample_submission(tmp_path / "sample.csv", IDS[:1])
    np.save(pred / "tiny_unet.npy", np.full((1, 70, 70), 3000, np.float16))
    assert (
        main(
            [
                "fwi",
                "write-csv",
                str(pred / "tiny_unet.npy"),
                "--sample-submission",
                str(tmp_path / "sample.csv"),
                "--out",
                str(subs),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in subs.iterdir()) == ["tiny_unet.csv", "tiny_unet.csv.sources.json"]
    capsys.readouterr()
