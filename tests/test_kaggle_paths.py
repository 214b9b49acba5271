"""Kernel input resolution under both mount layouts of /kaggle/input, and what a missing input says."""

import pytest

from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.paths import MissingInputError, find_input, find_weights, kaggle_root

OLD = {
    "competition": "input/waveform-inversion/sample_submission.csv",
    "dataset": "input/kagglekit-fwi-weights/manifest.json",
    "model": "input/kagglekit-fwi/pytorch/default/3/manifest.json",
    "kernel": "input/kagglekit-fwi-training/runs/cfg/fold0/last.pt",
}
NEW = {
    "competition": "input/competitions/waveform-inversion/sample_submission.csv",
    "dataset": "input/datasets/someone/kagglekit-fwi-weights/manifest.json",
    "model": "input/models/someone/kagglekit-fwi/pyTorch/default/3/manifest.json",
    "kernel": "input/notebooks/someone/kagglekit-fwi-training/runs/cfg/fold0/last.pt",
}
HANDLES = {
    "competition": ("waveform-inversion", "sample_submission.csv"),
    "dataset": ("someone/kagglekit-fwi-weights", "manifest.json"),
    "model": ("someone/kagglekit-fwi/pyTorch/default/3", "manifest.json"),
    "kernel": ("someone/kagglekit-fwi-training", "runs/cfg/fold0/last.pt"),
}


def make_tree(root, files):
    for rel in files.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / "working").mkdir()
    return root


@pytest.mark.parametrize("layout", [OLD, NEW], ids=["old", "new"])
def test_every_kind_resolves_under_both_layouts(layout, tmp_path):
    root = make_tree(tmp_path, layout)
    for kind, (handle, marker) in HANDLES.items():
        found = find_input(kind, handle, marker, root)
        assert (found / marker).is_file()
        assert str(found / marker) == str(root / layout[kind]), kind
    assert find_weights("someone/kagglekit-fwi/pyTorch/default/3", root=root) == find_input("model", *HANDLES["model"], root)
    assert find_weights("someone/kagglekit-fwi-weights/2", root=root) == find_input("dataset", *HANDLES["dataset"], root)


def test_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLEKIT_KAGGLE_ROOT", raising=False)
    assert str(kaggle_root()) == "/kaggle"
    monkeypatch.setenv("KAGGLEKIT_KAGGLE_ROOT", str(tmp_path))
    make_tree(tmp_path, NEW)
    assert find_input("competition", "waveform-inversion", "sample_submission.csv").parent == tmp_path / "input" / "competitions"


def test_an_unforeseen_layout_is_found_by_its_marker_and_ambiguity_is_an_error(tmp_path):
    (tmp_path / "input/somewhere/else/kagglekit-fwi-weights").mkdir(parents=True)
    (tmp_path / "input/somewhere/else/kagglekit-fwi-weights/manifest.json").write_text("{}")
    found = find_input("dataset", "someone/kagglekit-fwi-weights", "manifest.json", tmp_path)
    assert found == tmp_path / "input/somewhere/else/kagglekit-fwi-weights"
    (tmp_path / "input/other/kagglekit-fwi-weights").mkdir(parents=True)
    (tmp_path / "input/other/kagglekit-fwi-weights/manifest.json").write_text("{}")
    with pytest.raises(MissingInputError, match="several folders"):
        find_input("dataset", "someone/kagglekit-fwi-weights", "manifest.json", tmp_path)


def test_a_missing_input_lists_what_is_mounted(tmp_path):
    make_tree(tmp_path, NEW)
    with pytest.raises(MissingInputError) as err:
        find_input("dataset", "someone/kagglekit-code", "manifest.json", tmp_path)
    text = str(err.value)
    assert "\n" not in text and "dataset someone/kagglekit-code is not attached" in text
    assert "datasets/someone/kagglekit-code/manifest.json" in text and "kagglekit-code/manifest.json" in text  # where it looked
    for mounted in ("competitions/waveform-inversion/", "datasets/someone/kagglekit-fwi-weights/", "models/someone/"):
        assert mounted in text  # what it found instead
    with pytest.raises(MissingInputError, match="does not exist"):
        find_input("competition", "waveform-inversion", "sample_submission.csv", tmp_path / "nowhere")
    with pytest.raises(KaggleError, match="expected owner/model/framework/variation/version"):
        find_input("model", "someone/kagglekit-fwi", "manifest.json", tmp_path)
