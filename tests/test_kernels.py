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

from kagglekit.cli import main
from kagglekit.config import Strict
from kagglekit.engine.task import TASKS, TaskSpec, register_task
from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.kernels import KernelKind, KernelOption, kernel_kinds, render_kernel, slugify
from kagglekit.kaggle.paths import find_input, kaggle_root
from kagglekit.kaggle.validate import validate_folder
from kagglekit.registry import Registry
from tests.conftest import kaggle_cli

ROOT = Path(__file__).resolve().parents[1]
KERNELS = sorted(p.parent for p in (ROOT / "kernels").glob("*/kernel-metadata.json"))
KINDS = {
    "kagglekit-fwi-submission": "fwi-submission",
    "kagglekit-fwi-training": "fwi-training",
    "kagglekit-vision-submission": "vision-submission",
}


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
    script = (out / "submission.py").read_text()
    assert "BATCH_SIZE = 64  #" in script and "REFINE_MINUTES = 30.0  #" in script  # typed like the option
    assert "from kagglekit.fwi.kernels import fwi_submission" in script
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


def toy_answer(question: str, answer: int, root=None) -> Path:
    """The toy task's kernel: reads its competition's question file, writes working/answer.txt."""
    root = kaggle_root(root)
    comp = find_input("competition", question, "question.txt", root)
    out = root / "working" / "answer.txt"
    out.write_text(f"{(comp / 'question.txt').read_text().strip()} {answer}\n")
    return out


class ToyData(Strict):
    question: str = "six times seven?"


TOY = TaskSpec(
    name="toy",
    help="a third competition that ships a kernel",
    data_config=ToyData,
    build=lambda cfg: None,
    models=Registry("toy model"),
    kernels=(
        KernelKind(
            name="toy-answer",
            title="kagglekit toy answer",
            summary="answers the toy competition's question.",
            runtime=toy_answer,
            options={
                "question": KernelOption("toy-question", "the competition asked", source="competition"),
                "answer": KernelOption(41, "what to answer", int),
            },
        ),
    ),
)


@pytest.fixture
def toy_task():
    register_task(TOY)
    yield TOY
    TASKS.unregister("toy")


def test_a_third_task_ships_a_kernel_without_touching_kaggle(toy_task, tmp_path, capsys):
    """A kind declared by a task registered at run time: the CLI offers its options, renders it
    with the general template, and the rendered script runs its runtime on a fake Kaggle tree."""
    assert "toy-answer" in kernel_kinds()
    out = tmp_path / "kernel"
    assert main(["kaggle", "render-kernel", "toy-answer", "--out", str(out), "--answer", "42", "--owner", "someone"]) == 0
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["id"] == "someone/kagglekit-toy-answer" and meta["code_file"] == "kernel.py"
    assert meta["competition_sources"] == ["toy-question"] and meta["dataset_sources"] == ["someone/kagglekit-code"]
    assert validate_folder(out) == ["kernel-metadata.json"]
    script = (out / "kernel.py").read_text()
    assert "ANSWER = 42  # what to answer" in script and "from tests.test_kernels import toy_answer" in script

    root = tmp_path / "kaggle"
    (root / "input" / "competitions" / "toy-question").mkdir(parents=True)
    (root / "input" / "competitions" / "toy-question" / "question.txt").write_text("six times seven?\n")
    (root / "working").mkdir()
    env = {**os.environ, "KAGGLEKIT_KAGGLE_ROOT": str(root), "PYTHONPATH": str(ROOT), "LOCAL_RANK": "0"}  # no wheels to install
    result = subprocess.run([sys.executable, str(out / "kernel.py")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (root / "working" / "answer.txt").read_text() == "six times seven? 42\n"

    assert main(["kaggle", "render-kernel", "toy-answer", "--out", str(out), "--refine-minutes", "3"]) == 2
    assert "toy-answer kernels take no --refine-minutes" in capsys.readouterr().err
    with pytest.raises(ValueError, match="reserved"):
        KernelKind("bad", "kagglekit bad kernel", "x", toy_answer, {"out": KernelOption(None, "clashes with --out")})
