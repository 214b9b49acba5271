"""The code dataset and the FWI submission kernel end to end, offline.

`stage-code` builds kagglekit's wheel and repacks the installed segmentation-models-pytorch and
deepwave (no network); the folder installs into an empty target and the real `kaggle` CLI accepts
it. The committed kernel script then runs on a fake Kaggle tree in a Python that cannot import
kagglekit, segmentation-models-pytorch, deepwave or kaggle until the script installs the staged
wheels (a bare venv seeing every other package of .venv through a .pth file, pip's own
configuration switched off); its submission.csv validates and matches `fwi predict` + `fwi write-csv`
(or the ensemble.json blend) computed here, under both mount layouts.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kagglekit.cli import main
from kagglekit.config import load_config
from kagglekit.errors import UserError
from kagglekit.fwi.ensemble import Blend, blend_config_predictions
from kagglekit.fwi.submission import write_csv
from kagglekit.kaggle.stage import read_manifest, sha256_file, stage_code, stage_weights
from kagglekit.kaggle.validate import validate_folder
from tests.conftest import kaggle_cli, make_run

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "kernels" / "kagglekit-fwi-submission" / "submission.py"
HIDDEN = ("kagglekit", "segmentation_models_pytorch", "deepwave", "kaggle", "kagglesdk")
PROBE = f"import importlib.util as u; print([m for m in {HIDDEN!r} if u.find_spec(m)])"


@pytest.fixture(scope="module")
def code(tmp_path_factory):
    out, _ = stage_code(tmp_path_factory.mktemp("code") / "kagglekit-code", download=False, compress_level=0)  # stored: faster
    return out


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A venv whose site-packages sees .venv's packages except kagglekit, smp, deepwave and kaggle."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    shared = venv / "shared-site"
    shared.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).resolve().iterdir():
        stem = entry.name.lower().split("-")[0].split(".")[0]
        if stem in HIDDEN or entry.name.startswith("__editable__") or entry.suffix == ".pth":
            continue
        (shared / entry.name).symlink_to(entry)
    (site,) = venv.glob("lib/python3*/site-packages")
    (site / "shared-site.pth").write_text(f"{shared}\n")
    python = venv / "bin" / "python"
    assert run_python(python, "-c", PROBE).stdout.strip() == "[]"
    return python


def clean_env(**extra: str) -> dict:
    """This environment without PYTHONPATH and pip settings (find-links, indexes, config files)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "KAGGLE"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PYTHONNOUSERSITE": "1", **extra}


def run_python(python: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=600)


def pins(code: Path) -> list[str]:
    return [f"{w['name']}=={w['version']}" for w in read_manifest(code)["wheels"]]


def test_code_folder_holds_wheels_metadata_and_manifest_only(code):
    names = sorted(p.name for p in code.iterdir())
    wheels = [n for n in names if n.endswith(".whl")]
    assert sorted(set(names) - set(wheels)) == ["dataset-metadata.json", "manifest.json"]
    assert [n.split("-")[0] for n in wheels] == ["deepwave", "kagglekit", "segmentation_models_pytorch"]
    manifest = read_manifest(code)
    assert manifest["dataset"] == "kagglekit/kagglekit-code" and manifest["python"] == "3.11"
    assert {name: entry["sha256"] for name, entry in manifest["files"].items()} == {n: sha256_file(code / n) for n in wheels}
    assert pins(code) == ["kagglekit==0.1.0", "segmentation_models_pytorch==0.6.0", "deepwave==0.1.0"]
    assert validate_folder(code) == ["dataset-metadata.json"]


def test_code_installs_offline_into_an_empty_target(code, bare_python, tmp_path):
    target = tmp_path / "target"
    pip = ["-m", "pip", "install", "-q", "--no-index", "--no-deps", "--disable-pip-version-check", "--target", str(target)]
    result = run_python(bare_python, *pip, "--find-links", str(code), *pins(code))
    assert result.returncode == 0, result.stderr[-2000:]
    check = "import kagglekit, kagglekit.fwi.submission, segmentation_models_pytorch, deepwave; print(kagglekit.__file__)"
    result = run_python(bare_python, "-c", check, PYTHONPATH=str(target))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith(str(target))


def test_real_kaggle_cli_accepts_the_code_folder(code, tmp_path):
    output = kaggle_cli("datasets", "create", "-p", str(code), home=tmp_path)
    assert "GetDatasetStatus" in output and "api.kaggle.com" in output, output[-2000:]  # only the network step failed
    bad = tmp_path / "bad"
    bad.mkdir()
    meta = json.loads((code / "dataset-metadata.json").read_text())
    (bad / "dataset-metadata.json").write_text(json.dumps({**meta, "id": "kagglekit/kit"}))
    assert "The dataset slug must be between 6 and 50 characters" in kaggle_cli(
        "datasets", "create", "-p", str(bad), home=tmp_path
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders as `fit` leaves them: tiny_unet with its migration layer (the path that must not
    import deepwave) and tiny_inversionnet; weights as initialised (training is not under test)."""
    root = tmp_path_factory.mktemp("runs")
    return make_run(root, "fwi/tiny_unet", "fold0", "model.kwargs.migration_velocities=[2000,3500]"), make_run(
        root, "fwi/tiny_inversionnet"
    )


@pytest.fixture(scope="module")
def competition(tmp_path_factory) -> Path:
    """The competition's test files (random gathers, 10-hex ids) and its sample submission."""
    root = tmp_path_factory.mktemp("competition")
    rng = np.random.default_rng(0)
    ids = sorted({"".join(rng.choice(list("0123456789abcdef"), 10)) for _ in range(3)})
    (root / "test").mkdir()
    for i in ids:
        np.save(root / "test" / f"{i}.npy", (rng.standard_normal((5, 1000, 70)) * 5).astype(np.float32))
    rows = pd.DataFrame({"oid_ypos": [f"{i}_y_{y}" for i in ids for y in range(70)]})
    pd.concat([rows, pd.DataFrame(3000.0, index=rows.index, columns=[f"x_{x}" for x in range(1, 70, 2)])], axis=1).to_csv(
        root / "sample_submission.csv", index=False
    )
    return root


def kaggle_tree(root: Path, layout: str, competition: Path, code: Path, weights: Path | None) -> Path:
    """`root/input` mounted the old or the new way (links to the real folders), empty working/ and tmp/."""
    new = layout == "new"
    comp = root / "input" / ("competitions/waveform-inversion" if new else "waveform-inversion")
    comp.mkdir(parents=True)
    for name in ("test", "sample_submission.csv"):
        (comp / name).symlink_to(competition / name)
    for rel, target in (
        (f"{'datasets/kagglekit/' if new else ''}kagglekit-code", code),
        (f"{'datasets/kagglekit/' if new else ''}kagglekit-fwi-weights", weights),
    ):
        if target is not None:
            (root / "input" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "input" / rel).symlink_to(target)
    for name in ("working", "tmp"):
        (root / name).mkdir()
    return root


def run_kernel(python: Path, root: Path) -> subprocess.CompletedProcess:
    return run_python(python, str(KERNEL), cwd=root / "working", KAGGLEKIT_KAGGLE_ROOT=str(root), TMPDIR=str(root / "tmp"))


def assert_same_csv(got: Path, expected: Path) -> None:
    a, b = pd.read_csv(got), pd.read_csv(expected)
    assert list(a.columns) == list(b.columns) and a["oid_ypos"].equals(b["oid_ypos"])
    assert np.abs(a.iloc[:, 1:].to_numpy() - b.iloc[:, 1:].to_numpy()).max() <= 0.05


def test_submission_kernel_end_to_end_on_both_layouts(runs, code, bare_python, competition, tmp_path):
    comp = competition
    sample = comp / "sample_submission.csv"
    unet_run, inversion_run = runs

    # new layout, one config: the kernel's CSV is `fwi predict` + `fwi submit` of the same runs
    weights, _ = stage_weights([unet_run], tmp_path / "w1")
    root = kaggle_tree(tmp_path / "new", "new", comp, code, weights)
    result = run_kernel(bare_python, root)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Successfully installed" in result.stdout and "wrote and validated" in result.stdout
    assert sorted(os.listdir(root / "working")) == ["submission.csv"] and os.listdir(root / "tmp") == []  # intermediates gone
    csv = root / "working" / "submission.csv"
    assert main(["fwi", "validate", str(csv), "--sample-submission", str(sample)]) == 0
    pred = tmp_path / "pred"
    assert main(["fwi", "predict", str(unet_run), "--test-dir", str(comp / "test"), "--out", str(pred), "--workers", "0"]) == 0
    args = ["fwi", "write-csv", str(pred / "tiny_unet.npy"), "--sample-submission", str(sample), "--out", str(tmp_path)]
    assert main([*args, "--name", "local"]) == 0
    local = tmp_path / "local.csv"
    assert_same_csv(csv, local)
    assert run_python(bare_python, "-c", PROBE).stdout.strip() == str(["kagglekit", "segmentation_models_pytorch", "deepwave"])

    # old layout, two configs blended by an ensemble.json as `fwi ensemble` writes it; first without the weights attached
    ensemble = tmp_path / "ensemble.json"
    ensemble.write_text(json.dumps(Blend("weights", np.array([0.7, 0.3]), ["tiny_unet", "tiny_inversionnet"], {}, {}).to_json()))
    weights, _ = stage_weights([unet_run, inversion_run], tmp_path / "w2", ensemble=ensemble)
    root = kaggle_tree(tmp_path / "old-missing", "old", comp, code, None)
    result = run_kernel(bare_python, root)
    assert result.returncode != 0 and "dataset kagglekit/kagglekit-fwi-weights is not attached" in result.stderr
    assert "holds: kagglekit-code/, waveform-inversion/, waveform-inversion/test/" in result.stderr  # what is mounted instead
    root = kaggle_tree(tmp_path / "old", "old", comp, code, weights)
    result = run_kernel(bare_python, root)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "by ensemble.json" in result.stdout
    csv = root / "working" / "submission.csv"
    assert main(["fwi", "validate", str(csv), "--sample-submission", str(sample)]) == 0
    both = tmp_path / "pred2"
    assert (
        main(
            [
                "fwi",
                "predict",
                str(unet_run),
                str(inversion_run),
                "--test-dir",
                str(comp / "test"),
                "--out",
                str(both),
                "--workers",
                "0",
            ]
        )
        == 0
    )
    blend = blend_config_predictions(both, ["tiny_inversionnet", "tiny_unet"], ensemble)
    assert_same_csv(csv, write_csv(blend, sample, tmp_path / "local2.csv"))


def test_a_pseudo_label_run_whose_parent_is_gone_runs_on_kaggle(code, bare_python, competition, tmp_path):
    """A `fwi pseudo-label` round's run starts from its parent's best.pt (`model.pretrained`); staged
    and run by the kernel with the parent deleted, it predicts from its own best.pt alone."""
    parent = make_run(tmp_path / "parent", "fwi/tiny_inversionnet")
    child = make_run(
        tmp_path / "runs",
        "fwi/tiny_inversionnet",
        "fold0",
        "name=tiny_inversionnet_pl1",
        f"model.pretrained={parent / 'best.pt'}",
    )
    weights, _ = stage_weights([child], tmp_path / "weights")
    assert load_config(weights / "tiny_inversionnet_pl1__fold0.yaml").model.pretrained == str(parent / "best.pt")
    shutil.rmtree(tmp_path / "parent")
    root = kaggle_tree(tmp_path / "kaggle", "new", competition, code, weights)
    result = run_kernel(bare_python, root)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "wrote and validated" in result.stdout
    assert (
        main(
            [
                "fwi",
                "validate",
                str(root / "working" / "submission.csv"),
                "--sample-submission",
                str(competition / "sample_submission.csv"),
            ]
        )
        == 0
    )


class Planted:
    """Unpickling this runs a shell command: what a hostile best.pt would carry."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_planted_checkpoint_is_refused_by_stage_weights_and_by_the_kernel(runs, competition, tmp_path, capsys):
    from kagglekit.fwi.kernels import fwi_submission
    from kagglekit.kaggle.stage import write_manifest

    marker = tmp_path / "MARKER"
    hostile = tmp_path / "runs" / "tiny_inversionnet" / "fold0"
    shutil.copytree(runs[1], hostile)
    torch.save({"model": Planted(f"touch {marker}"), "epoch": 1}, hostile / "best.pt")
    assert main(["kaggle", "stage-weights", str(hostile), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(hostile / "best.pt") in err
    assert not marker.exists() and not (tmp_path / "w").exists()

    # a weights folder whose manifest vouches for the planted file (sizes and hashes rewritten)
    weights, _ = stage_weights([runs[1]], tmp_path / "weights")
    shutil.copyfile(hostile / "best.pt", weights / "tiny_inversionnet__fold0.pt")
    write_manifest(weights, {k: v for k, v in read_manifest(weights).items() if k != "files"})
    root = kaggle_tree(tmp_path / "kaggle", "new", competition, tmp_path, weights)
    with pytest.raises(UserError, match="tiny_inversionnet__fold0.pt|best.pt"):
        fwi_submission("kagglekit/kagglekit-fwi-weights", root=root, num_workers=0, device="cpu")
    assert not marker.exists() and not (root / "working" / "submission.csv").exists()


def test_refinement_is_used_when_asked_for(runs, synthetic_competition, tmp_path):
    """fwi_submission in-process with the real refinement (4 simulated test maps, 1 iteration): what
    is submitted is `refine_predictions` of the blend, computed here the same way."""
    from kagglekit.fwi.ensemble import blend_config_predictions
    from kagglekit.fwi.kernels import fwi_submission
    from kagglekit.fwi.predict import predict_runs
    from kagglekit.fwi.refine import refine_predictions

    comp = synthetic_competition
    weights, _ = stage_weights([runs[1]], tmp_path / "weights")
    plain = kaggle_tree(tmp_path / "plain", "new", comp, tmp_path, weights)
    refined = kaggle_tree(tmp_path / "refined", "new", comp, tmp_path, weights)
    fwi_submission("kagglekit/kagglekit-fwi-weights", root=plain, num_workers=0, device="cpu")
    fwi_submission(
        "kagglekit/kagglekit-fwi-weights", root=refined, num_workers=0, device="cpu", refine_minutes=10.0, refine_iters=1
    )
    predict_runs([runs[1]], comp / "test", tmp_path / "pred", num_workers=0, device="cpu", progress=False)
    blend = blend_config_predictions(tmp_path / "pred", ["tiny_inversionnet"])
    local = refine_predictions(blend, comp / "test", tmp_path / "local", minutes=10.0, iters=1, progress=False)
    residuals = pd.read_csv(tmp_path / "local" / "residuals.csv")
    assert len(residuals) == len(blend) and residuals["accepted"].sum() >= 1  # refinement changed something
    expected = write_csv(local, comp / "sample_submission.csv", tmp_path / "expected.csv")
    assert_same_csv(refined / "working/submission.csv", expected)
    a = pd.read_csv(plain / "working/submission.csv").iloc[:, 1:].to_numpy()
    b = pd.read_csv(refined / "working/submission.csv").iloc[:, 1:].to_numpy()
    assert np.abs(a - b).max() > 1.0  # the refined maps were submitted, not the blend
