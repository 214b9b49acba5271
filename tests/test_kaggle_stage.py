"""Staged weights folders, wheel repacking and tags, and `kaggle validate` (kagglekit's stricter
rules and the real `kaggle` CLI's own, offline)."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kagglekit.config import load_config
from kagglekit.fwi.ensemble import Blend
from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.stage import read_manifest, sha256_file, stage_weights
from kagglekit.kaggle.validate import validate_folder
from kagglekit.kaggle.wheels import parse_wheel_name, repack_installed, runtime_requirements, suits_kaggle
from tests.conftest import kaggle_cli, make_run

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "kernels" / "kagglekit-fwi-submission"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return [
        make_run(root, "fwi/tiny_inversionnet", "fold0"),
        make_run(root, "fwi/tiny_inversionnet", "fold1"),
        make_run(root, "fwi/tiny_hgnet"),
    ]


@pytest.fixture(scope="module")
def staged(runs, tmp_path_factory):
    blend = Blend("weights", np.array([0.25, 0.75]), ["tiny_inversionnet", "tiny_hgnet"], {}, {})
    ensemble = tmp_path_factory.mktemp("ens") / "ensemble.json"
    ensemble.write_text(json.dumps(blend.to_json()))
    out, _ = stage_weights(
        [runs[0].parent, runs[2]], tmp_path_factory.mktemp("staged") / "weights", ensemble=ensemble, owner="someone"
    )
    return out


def test_weights_folder_is_flat_with_metadata_and_manifest(staged, runs):
    names = sorted(p.name for p in staged.iterdir())
    assert names == sorted(
        [
            "dataset-metadata.json",
            "model-metadata.json",
            "model-instance-metadata.json",
            "manifest.json",
            "ensemble.json",
            *(f"tiny_inversionnet__fold{k}.{ext}" for k in (0, 1) for ext in ("pt", "yaml")),
            "tiny_hgnet__fold0.pt",
            "tiny_hgnet__fold0.yaml",
        ]
    )
    manifest = read_manifest(staged)
    assert (
        manifest["kind"] == "kagglekit-weights"
        and manifest["task"] == "fwi"
        and manifest["dataset"] == "someone/kagglekit-fwi-weights"
    )
    assert manifest["model"] == "someone/kagglekit-fwi/pyTorch/default" and manifest["ensemble"] == "ensemble.json"
    first = manifest["runs"][0]
    assert first == {
        "config": "tiny_inversionnet",
        "fold": "fold0",
        "weights": "tiny_inversionnet__fold0.pt",
        "config_file": "tiny_inversionnet__fold0.yaml",
        "best_epoch": 3,
        "metrics": {"mae": 123.4},
    }
    assert manifest["files"]["tiny_inversionnet__fold0.pt"]["sha256"] == sha256_file(runs[0] / "best.pt")
    assert load_config(staged / "tiny_hgnet__fold0.yaml").model.name == "hgnet"  # the resolved config, loadable
    instance = json.loads((staged / "model-instance-metadata.json").read_text())
    assert (instance["ownerSlug"], instance["modelSlug"], instance["framework"], instance["instanceSlug"]) == (
        "someone",
        "kagglekit-fwi",
        "pyTorch",
        "default",
    )
    assert validate_folder(staged) == ["dataset-metadata.json", "model-metadata.json", "model-instance-metadata.json"]


def test_staging_errors_and_replacement(runs, tmp_path):
    other = Blend("mean", np.array([0.5, 0.5]), ["tiny_inversionnet", "tiny_unet"], {}, {})
    (tmp_path / "ensemble.json").write_text(json.dumps(other.to_json()))
    with pytest.raises(KaggleError, match=r"blends \['tiny_unet'\], which none of the staged runs"):
        stage_weights([runs[0]], tmp_path / "w", ensemble=tmp_path / "ensemble.json")
    vision = make_run(tmp_path / "runs", "vision/tiny_digits")
    with pytest.raises(KaggleError, match="runs of several tasks"):
        stage_weights([runs[0], vision], tmp_path / "w")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a kagglekit-weights folder staged earlier"):
        stage_weights([runs[0]], tmp_path / "taken")
    stage_weights([runs[0]], tmp_path / "w")
    stage_weights([runs[2]], tmp_path / "w")  # an earlier staging is replaced as a whole
    assert [r["config"] for r in read_manifest(tmp_path / "w")["runs"]] == ["tiny_hgnet"]
    assert not (tmp_path / "w" / "tiny_inversionnet__fold0.pt").exists() and not list(tmp_path.glob(".w.*"))


def _mutated(folder: Path, tmp_path: Path, name: str, **changes) -> Path:
    copy = tmp_path / "copy"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(folder, copy)
    meta = json.loads((copy / name).read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    (copy / name).write_text(json.dumps(meta))
    return copy


KERNEL_CASES = [
    ({"enable_internet": None}, "enable_internet is not set"),
    ({"enable_internet": True}, "must be false for a kernel with competition sources"),
    ({"machine_shape": None}, "enable_gpu without machine_shape gives a P100"),
    ({"machine_shape": "NvidiaTeslaP100"}, "is a P100"),
    ({"enable_gpu": False}, "machine_shape 'NvidiaTeslaT4' is set but enable_gpu is not true"),
    ({"dataset_sources": ["datasets/kagglekit/kagglekit-code"]}, "carry a prefix"),
    ({"competition_sources": ["c/waveform-inversion"]}, "carry a prefix"),
    ({"title": "kagglekit submission"}, "differs from the slugified title"),
    ({"model_sources": ["a/b/pyTorch/c"]}, "must be owner/model/framework/variation/version"),
    ({"enable_gpu": "true"}, "enable_gpu must be true or false"),
    ({"code_file": "missing.py"}, "code_file missing.py not found"),
]


@pytest.mark.parametrize("changes,message", KERNEL_CASES, ids=[m for _, m in KERNEL_CASES])
def test_validate_rejects_kernel_metadata(changes, message, tmp_path):
    with pytest.raises(KaggleError, match=message):
        validate_folder(_mutated(KERNEL, tmp_path, "kernel-metadata.json", **changes))


def test_validate_rejects_dataset_and_model_metadata(staged, tmp_path):
    cases = [
        ("dataset-metadata.json", {"title": "kk"}, "title must be 6-50 characters"),
        ("dataset-metadata.json", {"id": "someone/abc"}, "slug must be 6-50 characters"),
        ("dataset-metadata.json", {"licenses": [{"name": "CC0-1.0"}, {"name": "other"}]}, "exactly one"),
        ("dataset-metadata.json", {"id": "someone/INSERT_SLUG_HERE"}, "template value"),
        ("model-instance-metadata.json", {"framework": "pytorch2"}, "framework 'pytorch2'"),
        ("model-instance-metadata.json", {"modelSlug": "other-model"}, "differs from model-metadata.json"),
        ("model-metadata.json", {"isPrivate": "yes"}, "isPrivate must be true or false"),
    ]
    for name, changes, message in cases:
        with pytest.raises(KaggleError, match=message):
            validate_folder(_mutated(staged, tmp_path, name, **changes))
    copy = _mutated(staged, tmp_path, "dataset-metadata.json")
    (copy / "runs").mkdir()
    (copy / "extra.txt").write_text("x")
    with open(copy / "tiny_hgnet__fold0.yaml", "a") as f:
        f.write("# edited\n")
    with pytest.raises(KaggleError) as err:
        validate_folder(copy)
    for message in (
        "sub-folders ['runs'] would be skipped",
        "tiny_hgnet__fold0.yaml changed since it was staged",
        "files not in manifest.json",
    ):
        assert message in str(err.value)


def test_real_kaggle_cli_accepts_the_weights_folder_offline(staged, tmp_path):
    output = kaggle_cli("datasets", "create", "-p", str(staged), home=tmp_path)
    assert "GetDatasetStatus" in output and "api.kaggle.com" in output, output[-2000:]  # only the network step failed
    output = kaggle_cli("models", "create", "-p", str(staged), home=tmp_path)
    assert "CreateModel" in output and "api.kaggle.com" in output, output[-2000:]
    bad = _mutated(staged, tmp_path, "dataset-metadata.json", licenses=[{"name": "CC0-1.0"}, {"name": "other"}])
    assert "Please specify exactly one license" in kaggle_cli("datasets", "create", "-p", str(bad), home=tmp_path)
    bad = _mutated(staged, tmp_path, "model-metadata.json", isPrivate="yes")
    assert "model.isPrivate must be a boolean" in kaggle_cli("models", "create", "-p", str(bad), home=tmp_path)


def test_wheel_tags_and_requirements():
    assert [name for name, _ in runtime_requirements()] == ["segmentation_models_pytorch", "deepwave"]
    _, _, tags = parse_wheel_name("deepwave-0.1.0-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl")
    assert suits_kaggle(tags)
    for name in (
        "numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.whl",
        "x-1.0-py3-none-macosx_11_0_arm64.whl",
        "x-1-py3-none-manylinux_2_39_x86_64.whl",
    ):
        assert not suits_kaggle(parse_wheel_name(name)[2]), name
    assert suits_kaggle(parse_wheel_name("x-1.0-cp38-abi3-manylinux1_x86_64.whl")[2])
    with pytest.raises(KaggleError, match="not a wheel file name"):
        parse_wheel_name("six.tar.gz")


def test_repacked_installed_wheel_installs_offline(tmp_path):
    wheel = repack_installed("six", tmp_path)
    assert wheel.path.name == "six-1.17.0-py2.py3-none-any.whl" and wheel.version == "1.17.0"
    with zipfile.ZipFile(wheel.path) as zf:
        names = zf.namelist()
        record = zf.read("six-1.17.0.dist-info/RECORD").decode()
    assert "six.py" in names and not any(n.endswith(("INSTALLER", "REQUESTED", ".pyc")) for n in names)
    assert all(line.split(",")[0] in names for line in record.splitlines())
    assert repack_installed("six", tmp_path / ".").path.read_bytes() == wheel.path.read_bytes()  # reproducible
    target = tmp_path / "target"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--disable-pip-version-check",
        "--target",
        str(target),
    ]
    subprocess.run([*pip, str(wheel.path)], check=True, capture_output=True)
    assert (target / "six.py").read_bytes() == Path(__import__("six").__file__).read_bytes()


def test_dependency_wheels_come_from_find_links_first_and_fail_clearly_otherwise(tmp_path, monkeypatch):
    from kagglekit.kaggle import wheels

    links, out = tmp_path / "links", tmp_path / "out"
    links.mkdir()
    out.mkdir()
    (links / "six-1.16.0-py2.py3-none-any.whl").write_bytes(b"older")  # another version: not taken
    (links / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"wheel")
    got = wheels.dependency_wheel("six", "1.17.0", out, (links,), False, "3.11", wheels.KAGGLE_PLATFORM)
    assert got.source == f"copied from {links}" and got.path.read_bytes() == b"wheel"
    monkeypatch.setattr(wheels, "_installed_tags", lambda dist: {("py3", "none", "macosx_11_0_arm64")})
    with pytest.raises(
        KaggleError, match=r"six 1\.17\.0: no wheel for cp311 manylinux_2_28_x86_64 .*macosx_11_0_arm64.*allow downloads"
    ):
        wheels.dependency_wheel("six", "1.17.0", out, (), False, "3.11", wheels.KAGGLE_PLATFORM)
