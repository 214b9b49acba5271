"""The code dataset and the FWI submission kernel end to end, offline.

`stage-code` builds kagglekit's wheel and repacks the installed segmentation-models-pytorch and
deepwave (no network); the folder installs into an empty target and the real `kaggle` CLI accepts
it. The committed kernel script then runs on a fake Kaggle tree in a Python that cannot import
kagglekit, segmentation-models-pytorch, deepwave or kaggle until the script installs the staged
wheels (a bare venv seeing every other package of .venv through a .pth file, pip's own
configuration switched off); its submission.csv validates and matches `fwi predict` + `fwi submit`
(or the ensemble.json blend) computed here, under both mount layouts.
"""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kagglekit.cli import main
from kagglekit.fwi.ensemble import Blend, blend_config_predictions
from kagglekit.fwi.submission import write_submission
from kagglekit.kaggle.stage import read_manifest, sha256_file, stage_code, stage_weights
from kagglekit.kaggle.validate import validate_folder
from tests.test_kaggle_stage import make_run
from tests.test_kernels import kaggle_cli

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
    local = tmp_path / "local.csv"
    assert (
        main(
            [
                "fwi",
                "submit",
                str(pred / "tiny_unet.npy"),
                "--ids",
                str(pred / "ids.txt"),
                "--sample-submission",
                str(sample),
                "--out",
                str(local),
            ]
        )
        == 0
    )
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
    blend, ids = blend_config_predictions(both, ["tiny_inversionnet", "tiny_unet"], ensemble)
    assert_same_csv(csv, write_submission(blend, ids, sample, tmp_path / "local2.csv"))


def test_refinement_is_used_when_asked_for(runs, competition, tmp_path, monkeypatch):
    """fwi_submission in-process with a stand-in `fwi refine` (+100 m/s): its output is what is submitted."""
    import kagglekit.fwi.refine
    from kagglekit.io import read_ids, write_ids
    from kagglekit.kaggle.runtime import fwi_submission

    calls = []

    def refine_file(pred_path, ids_path, test_dir, out_dir, *, budget_minutes=None, device="cpu", **kwargs):
        calls.append((Path(test_dir), budget_minutes, device))
        Path(out_dir).mkdir()
        np.save(Path(out_dir) / "refined.npy", (np.load(pred_path) + 100).astype(np.float16))
        write_ids(Path(out_dir) / "ids.txt", read_ids(ids_path))
        return Path(out_dir)

    monkeypatch.setattr(kagglekit.fwi.refine, "refine_file", refine_file)
    weights, _ = stage_weights([runs[1]], tmp_path / "weights")
    plain = kaggle_tree(tmp_path / "plain", "new", competition, tmp_path, weights)
    refined = kaggle_tree(tmp_path / "refined", "new", competition, tmp_path, weights)
    fwi_submission("kagglekit/kagglekit-fwi-weights", root=plain, num_workers=0, device="cpu")
    fwi_submission("kagglekit/kagglekit-fwi-weights", root=refined, num_workers=0, device="cpu", refine_minutes=2.0)
    assert calls == [(refined / "input/competitions/waveform-inversion/test", 2.0, "cpu")]
    a = pd.read_csv(plain / "working/submission.csv").iloc[:, 1:].to_numpy()
    b = pd.read_csv(refined / "working/submission.csv").iloc[:, 1:].to_numpy()
    assert np.abs(np.minimum(a + 100, 4500) - b).max() <= 2.05  # float16 storage of the refined maps
