"""Kaggle kernel mirrors: valid metadata, checked by the real `kaggle` CLI offline."""

import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

KERNELS = sorted(p.parent for p in (Path(__file__).resolve().parents[1] / "kernels").glob("*/kernel-metadata.json"))
KAGGLE = Path(sys.executable).parent / "kaggle"


def push(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAGGLE_USERNAME": "kagglekit-test", "KAGGLE_KEY": "0" * 32}
    return subprocess.run(
        [str(KAGGLE), "kernels", "push", "-p", str(folder)], env=env, capture_output=True, text=True, timeout=120
    )


def test_there_is_a_kernel():
    assert KERNELS


@pytest.mark.parametrize("folder", KERNELS, ids=lambda p: p.name)
def test_metadata_and_code(folder, tmp_path):
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    slug = re.sub(r"[^a-z0-9]+", "-", meta["title"].lower()).strip("-")
    assert meta["id"].split("/")[1] == slug == folder.name
    assert meta["enable_internet"] is False  # code competitions run offline
    assert meta["language"] == "python" and meta["kernel_type"] in ("script", "notebook")
    py_compile.compile(str(folder / meta["code_file"]), cfile=str(tmp_path / "k.pyc"), doraise=True)


@pytest.mark.parametrize("folder", KERNELS, ids=lambda p: p.name)
def test_cli_accepts_metadata_and_rejects_a_bad_title(folder, tmp_path):
    result = push(folder)  # valid metadata: the CLI builds the SaveKernel request; only sending it fails offline
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "SaveKernel" in output and "api.kaggle.com" in output, output[-2000:]
    bad = tmp_path / folder.name
    shutil.copytree(folder, bad)
    meta = json.loads((bad / "kernel-metadata.json").read_text())
    meta["title"] = "kk"
    (bad / "kernel-metadata.json").write_text(json.dumps(meta))
    result = push(bad)
    assert "Title must be at least five characters" in result.stdout + result.stderr
