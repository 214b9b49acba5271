"""Refusals that refuse: every bad input to the prediction / CSV commands is one line on stderr, exit
status 2, no traceback and nothing left behind (driven through the real command line)."""

import json
import pickle

import numpy as np
import pytest
import torch

from kagglekit.cli import main
from kagglekit.fwi.synthetic import write_sample_submission

IDS = ["00000abc12", "0000012345", "0000fff000", "0000000042"]


@pytest.fixture
def comp(tmp_path):
    """A sample submission, a prediction file in m/s with ids.txt beside it, and its labels."""
    write_sample_submission(tmp_path / "sample.csv", IDS)
    rng = np.random.default_rng(0)
    labels = rng.uniform(1600, 4400, (4, 70, 70)).astype(np.float32)
    (tmp_path / "pred").mkdir()
    np.save(tmp_path / "pred" / "model.npy", (labels + 20).astype(np.float16))
    (tmp_path / "pred" / "ids.txt").write_text("\n".join(IDS) + "\n")
    np.save(tmp_path / "labels.npy", labels)
    (tmp_path / "label_ids.csv").write_text("id,family\n" + "".join(f"{i},F{k % 2}\n" for k, i in enumerate(IDS)))
    return tmp_path


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting a refusal: exit status 2 and exactly one line on stderr; returns it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


def argument_error(capsys, argv: list[str]) -> str:
    """An argparse refusal: exit status 2, exactly one line (no usage block, no traceback); returns it."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def write_csv_args(comp, pred, out="subs") -> list[str]:
    return ["fwi", "write-csv", str(pred), "--sample-submission", str(comp / "sample.csv"), "--out", str(comp / out)]


# --- fwi write-csv checks the values before clipping ------------------------------------------------


def test_write_csv_refuses_km_per_s(comp, capsys):
    km = comp / "km"
    km.mkdir()
    np.save(km / "model.npy", np.load(comp / "pred" / "model.npy").astype(np.float32) / 1000)
    (km / "ids.txt").write_text("\n".join(IDS) + "\n")
    err = one_line_error(capsys, write_csv_args(comp, km / "model.npy"))
    assert f"{km / 'model.npy'}: 100.0% of the scored values lie outside 1500-4500 m/s (found 1.6" in err
    assert "km/s?" in err
    assert not (comp / "subs").exists()


def test_write_csv_refuses_a_large_share_outside_and_reports_a_small_one(comp, capsys):
    values = np.load(comp / "pred" / "model.npy").astype(np.float32)
    values[0, :2, 1::2] = 1400.0  # 70 of 9800 scored values (0.71%): clipped by 100 m/s each
    np.save(comp / "pred" / "model.npy", values)
    assert main(write_csv_args(comp, comp / "pred" / "model.npy")) == 0
    out = capsys.readouterr().out
    assert "clipped 70 of 9,800 scored values (0.714%) to 1500-4500 m/s, by 100.0 m/s on average, at most 100.0 m/s" in out
    assert (comp / "subs" / "model.csv").is_file()
    values[1, :2, 1::2] = 9000.0  # + 70: 1.43% outside
    np.save(comp / "pred" / "model.npy", values)
    err = one_line_error(capsys, write_csv_args(comp, comp / "pred" / "model.npy", out="subs2"))
    assert "1.4% of the scored values lie outside 1500-4500 m/s (found 1400 to 9000" in err
    assert not (comp / "subs2").exists()


def test_write_csv_records_its_sources(comp, capsys):
    run = str(comp / "runs" / "cfg" / "fold0")
    (comp / "pred" / "runs.json").write_text(json.dumps({"model": [run]}))
    assert main([*write_csv_args(comp, comp / "pred" / "model.npy"), "--name", "first"]) == 0
    sources = json.loads((comp / "subs" / "first.csv.sources.json").read_text())
    assert sources["runs"] == [run] and sources["predictions"] == str((comp / "pred" / "model.npy").resolve())


# --- an unreadable prediction file, wherever one is read -----------------------------------------------


def _bad_npy(path, kind: str) -> None:
    good = np.full((4, 70, 70), 3000.0, np.float32)
    if kind == "truncated":
        np.save(path, good)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "object":
        np.save(path, np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(good))
    elif kind == "strings":
        np.save(path, np.full((4, 70, 70), "x"))
    elif kind == "shape":
        np.save(path, good[:, :, :69])
    elif kind == "nan":
        good[2, 3, 4] = np.nan
        np.save(path, good)
    (path.parent / "ids.txt").write_text("\n".join(IDS) + "\n")


BAD = ["truncated", "empty", "object", "pickle", "strings", "shape", "nan"]


@pytest.mark.parametrize("kind", BAD)
def test_write_csv_refuses_an_unreadable_prediction(comp, capsys, kind):
    bad = comp / "bad" / "model.npy"
    bad.parent.mkdir()
    _bad_npy(bad, kind)
    err = one_line_error(capsys, write_csv_args(comp, bad))
    assert str(bad) in err
    assert not (comp / "subs").exists()


@pytest.mark.parametrize("kind", ["truncated", "object", "nan"])
def test_ensemble_and_refine_refuse_an_unreadable_prediction(comp, capsys, kind):
    bad = comp / "bad" / "model.npy"
    bad.parent.mkdir()
    _bad_npy(bad, kind)
    err = one_line_error(capsys, ["fwi", "ensemble", str(comp / "runs" / "cfg"), "--preds", str(bad), "--out", str(comp / "ens")])
    assert str(bad) in err and not (comp / "ens").exists()
    err = one_line_error(
        capsys, ["fwi", "refine", str(bad), "--test-dir", str(comp), "--out", str(comp / "ref"), "--device", "cpu"]
    )
    assert str(bad) in err and not (comp / "ref").exists()


# --- fwi score: a bad labels file --------------------------------------------------------------------


def _score_args(comp, labels="labels.npy", label_ids="label_ids.csv") -> list[str]:
    return [
        "fwi",
        "score",
        str(comp / "subs" / "model.csv"),
        "--labels",
        str(comp / labels),
        "--label-ids",
        str(comp / label_ids),
    ]


def test_score_refuses_bad_labels(comp, capsys):
    assert main(write_csv_args(comp, comp / "pred" / "model.npy")) == 0
    assert main(_score_args(comp)) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| all |")][0]
    assert float(row.split("|")[2]) == pytest.approx(20.0, abs=0.1)  # the labels + 20 m/s (float16 storage)
    labels = np.load(comp / "labels.npy")
    assert f"{comp / 'missing.npy'}: labels file not found" in one_line_error(capsys, _score_args(comp, "missing.npy"))
    (comp / "trunc.npy").write_bytes((comp / "labels.npy").read_bytes()[:3000])
    assert "not a readable .npy array" in one_line_error(capsys, _score_args(comp, "trunc.npy"))
    np.save(comp / "shape.npy", labels[:, :, :69])
    assert "expected (N, 70, 70) velocity maps, found shape (4, 70, 69)" in one_line_error(capsys, _score_args(comp, "shape.npy"))
    nan = labels.copy()
    nan[1, 2, 3] = np.inf
    np.save(comp / "nan.npy", nan)
    assert f"1 maps have non-finite values (first: ['{IDS[1]}'])" in one_line_error(capsys, _score_args(comp, "nan.npy"))
    (comp / "short_ids.csv").write_text("id\n" + "\n".join(IDS[:3]) + "\n")
    assert "3 ids for the 4 maps" in one_line_error(capsys, _score_args(comp, label_ids="short_ids.csv"))
    (comp / "other_ids.csv").write_text("id\n" + "\n".join([*IDS[:3], "ffffffffff"]) + "\n")
    assert f"id '{IDS[3]}' has no label" in one_line_error(capsys, _score_args(comp, label_ids="other_ids.csv"))
    (comp / "no_id.csv").write_text("name\n" + "\n".join(IDS) + "\n")
    assert "expected a CSV with an 'id' column" in one_line_error(capsys, _score_args(comp, label_ids="no_id.csv"))


# --- counts and devices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, option",
    [
        (["fwi", "augment", "CONV", "--out", "OUT", "--count", "0"], "--count"),
        (["fwi", "augment", "CONV", "--out", "OUT", "--count", "8", "--shard-size", "0"], "--shard-size"),
        (["fwi", "augment", "CONV", "--out", "OUT", "--count", "8", "--batch-size", "0"], "--batch-size"),
        (["fwi", "augment", "CONV", "--out", "OUT", "--count", "8", "--batch", "-3"], "--batch-size"),
        (["fwi", "refine", "P.npy", "--test-dir", "CONV", "--out", "OUT", "--samples", "0"], "--samples"),
    ],
)
def test_counts_must_be_positive(tmp_path, capsys, argv, option):
    argv = [a.replace("CONV", str(tmp_path / "conv")).replace("OUT", str(tmp_path / "out")) for a in argv]
    line = argument_error(capsys, argv)
    assert line.endswith(f"error: argument {option}: expected a positive integer, got {argv[-1]}")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line(comp, capsys):
    err = one_line_error(
        capsys,
        [
            "fwi",
            "predict",
            str(comp / "runs" / "cfg" / "fold0"),
            "--test-dir",
            str(comp),
            "--out",
            str(comp / "p2"),
            "--device",
            "cuda",
        ],
    )
    assert err == "error: --device cuda: no CUDA GPU is visible to torch (use --device cpu or auto)"
    err = one_line_error(capsys, ["fwi", "augment", str(comp), "--out", str(comp / "aug"), "--count", "4", "--device", "cuda"])
    assert "no CUDA GPU" in err
    assert not (comp / "p2").exists() and not (comp / "aug").exists()
