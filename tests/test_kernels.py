"""The committed Kaggle kernels: exactly what `kagglekit kaggle render-kernel` writes, valid under
kagglekit's stricter rules, and accepted by the real `kaggle` CLI offline."""

import json
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.kernels import render_kernel, slugify
from kagglekit.kaggle.validate import validate_folder

ROOT = Path(__file__).resolve().parents[1]
KERNELS = sorted(p.parent for p in (ROOT / "kernels").glob("*/kernel-metadata.json"))
KINDS = {
    "kagglekit-fwi-submission": "fwi-submission",
    "kagglekit-fwi-training": "fwi-training",
    "kagglekit-vision-submission": "vision-submission",
}
KAGGLE = Path(sys.executable).parent / "kaggle"


def kaggle_env(home: Path) -> dict:
    """Dummy username/key (checked only over the network), no token, config in a temp dir (KAGGLE.md)."""
    env = {k: v for k, v in os.environ.items() if k != "KAGGLE_API_TOKEN"}
    return {**env, "KAGGLE_USERNAME": "kagglekit-test", "KAGGLE_KEY": "0" * 32, "HOME": str(home), "KAGGLE_CONFIG_DIR": str(home)}


def kaggle_cli(*args: str, home: Path) -> str:
    result = subprocess.run([str(KAGGLE), *args], env=kaggle_env(home), capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr


def test_committed_kernels_are_what_render_kernel_writes(tmp_path):
    assert [p.name for p in KERNELS] == sorted(KINDS)
    for slug, kind in KINDS.items():
        out = render_kernel(kind, tmp_path / slug)
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (ROOT / "kernels" / slug).iterdir())
        for rendered in out.iterdir():
            committed = ROOT / "kernels" / slug / rendered.name
            assert rendered.read_bytes() == committed.read_bytes(), (
                f"{committed} is not what `kagglekit kaggle render-kernel {kind}` writes"
            )


@pytest.mark.parametrize("folder", KERNELS, ids=lambda p: p.name)
def test_metadata_and_code(folder, tmp_path):
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta["id"].split("/")[1] == slugify(meta["title"]) == folder.name
    assert meta["enable_internet"] is False  # code competitions (and these kernels) run offline
    assert meta["enable_gpu"] is True and meta["machine_shape"] == "NvidiaTeslaT4"  # not the P100 of enable_gpu alone
    assert meta["language"] == "python" and meta["kernel_type"] == "script"
    assert "kagglekit/kagglekit-code" in meta["dataset_sources"]
    py_compile.compile(str(folder / meta["code_file"]), cfile=str(tmp_path / "k.pyc"), doraise=True)
    assert validate_folder(folder) == ["kernel-metadata.json"]


@pytest.mark.parametrize("folder", KERNELS, ids=lambda p: p.name)
def test_cli_accepts_metadata_and_rejects_a_bad_title(folder, tmp_path):
    output = kaggle_cli("kernels", "push", "-p", str(folder), home=tmp_path)
    # valid metadata: the CLI builds the SaveKernel request; only sending it fails offline
    assert "SaveKernel" in output and "api.kaggle.com" in output, output[-2000:]
    bad = tmp_path / folder.name
    shutil.copytree(folder, bad)
    meta = json.loads((bad / "kernel-metadata.json").read_text())
    meta["title"] = "kk"
    (bad / "kernel-metadata.json").write_text(json.dumps(meta))
    assert "Title must be at least five characters" in kaggle_cli("kernels", "push", "-p", str(bad), home=tmp_path)


def test_render_options(tmp_path):
    out = render_kernel(
        "fwi-submission", tmp_path / "k", owner="someone", weights="someone/kagglekit-fwi/pyTorch/default/2", refine_minutes=30
    )
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["id"] == "someone/kagglekit-fwi-submission" and meta["dataset_sources"] == ["someone/kagglekit-code"]
    assert meta["model_sources"] == ["someone/kagglekit-fwi/pyTorch/default/2"] and meta["competition_sources"] == [
        "waveform-inversion"
    ]
    assert 'OPTIONS = {"batch_size": 64, "refine_minutes": 30.0}' in (out / "submission.py").read_text()
    assert validate_folder(out) == ["kernel-metadata.json"]
    out = render_kernel("fwi-training", tmp_path / "t", resume_from="kagglekit/kagglekit-fwi-training", epochs_per_session=0)
    assert json.loads((out / "kernel-metadata.json").read_text())["kernel_sources"] == ["kagglekit/kagglekit-fwi-training"]
    assert "EPOCHS_PER_SESSION = None" in (out / "training.py").read_text()
    with pytest.raises(KaggleError, match="fwi-submission kernels take no --config"):
        render_kernel("fwi-submission", tmp_path / "x", config="configs/fwi/unet.yaml")
    with pytest.raises(KaggleError, match="slugifies to"):
        render_kernel("fwi-submission", tmp_path / "x", slug="my-kernel", title="Another title")
    with pytest.raises(KaggleError, match="vision"):
        render_kernel("fwi-training", tmp_path / "x", config=ROOT / "configs" / "vision" / "tiny_digits.yaml")
