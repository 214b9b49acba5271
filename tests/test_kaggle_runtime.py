"""The training and the image-classification kernels' library calls on fake Kaggle trees: a run
paused by the session limit continues from the kernel's earlier output; staged vision runs
predict a competition laid out as train.csv + image folders."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kagglekit.config import load_config
from kagglekit.engine.fit import fit
from kagglekit.fwi.data.convert import convert
from kagglekit.fwi.kernels import fwi_training
from kagglekit.kaggle.stage import stage_weights
from kagglekit.vision.kernels import vision_submission
from kagglekit.vision.predict import predict_runs

ROOT = Path(__file__).resolve().parents[1]


def mount(root: Path, rel: str, target: Path) -> None:
    (root / "input" / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / "input" / rel).symlink_to(target)
    (root / "working").mkdir(exist_ok=True)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """`fwi convert` output of a small random training tree (two families, 8 samples each)."""
    tmp = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for family in ("FlatVel_A", "CurveVel_A"):
        (tmp / "src" / family / "data").mkdir(parents=True)
        (tmp / "src" / family / "model").mkdir(parents=True)
        np.save(tmp / "src" / family / "data" / "data1.npy", rng.standard_normal((8, 5, 1000, 70)).astype(np.float32))
        np.save(tmp / "src" / family / "model" / "model1.npy", rng.uniform(1500, 4500, (8, 1, 70, 70)).astype(np.float32))
    return convert(tmp / "src", tmp / "converted", n_folds=2, progress=False)


def test_training_kernel_pauses_then_continues_from_its_earlier_output(converted, tmp_path, capfd):
    config = yaml.safe_load((ROOT / "configs" / "fwi" / "tiny_inversionnet.yaml").read_text())
    config["train"].update(epochs=2, num_workers=0)
    config["data"]["max_train_samples"] = 4
    text = yaml.safe_dump(config)
    first = tmp_path / "session1"
    mount(first, "datasets/kagglekit/kagglekit-fwi-converted", converted)  # newer layout
    run = fwi_training("kagglekit/kagglekit-fwi-converted", "tiny", text, fold=0, epochs_per_session=1, root=first, nproc=0)
    assert run == first / "working" / "runs" / "tiny" / "fold0" and (run / "last.pt").is_file() and (run / "best.pt").is_file()
    status = json.loads((first / "working" / "kagglekit-training.json").read_text())
    assert status.pop("config_sha256") == hashlib.sha256(text.encode()).hexdigest()  # which baked-in config ran
    assert status == {"config": "tiny", "fold": 0, "epochs_done": 1, "epochs": 2, "finished": False}
    assert "paused after epoch 1" in capfd.readouterr().out

    second = tmp_path / "session2"  # the next version of the kernel, with the first one's output attached (older layout)
    mount(second, "kagglekit-fwi-converted", converted)
    mount(second, "kagglekit-fwi-training", first / "working")
    run = fwi_training(
        "kagglekit/kagglekit-fwi-converted",
        "tiny",
        text,
        fold=0,
        epochs_per_session=1,
        resume_from="kagglekit/kagglekit-fwi-training",
        root=second,
        nproc=0,
    )
    out = capfd.readouterr().out
    assert "resumed" in out and "at epoch 2/2" in out
    assert json.loads((second / "working" / "kagglekit-training.json").read_text())["finished"] is True
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # the first session's epoch came along; the second trained only epoch 2
    assert (
        load_config(run / "config.yaml").data.root == str(converted.resolve())
        or "kagglekit-fwi-converted" in load_config(run / "config.yaml").data.root
    )


KERNEL_BODY = """
from kagglekit.fwi.kernels import fwi_training

fwi_training("kagglekit/kagglekit-fwi-converted", "tiny", {text!r}, fold=0, epochs_per_session=1, nproc=2, root={root!r})
"""


def test_training_kernel_relaunches_its_own_script_on_two_ranks(converted, tmp_path, capfd):
    """With 2 devices the kernel's script runs again under torchrun; each rank trains in-process (DDP,
    gloo on CPU here) and the launcher writes the status once both are done."""
    config = yaml.safe_load((ROOT / "configs" / "fwi" / "tiny_inversionnet.yaml").read_text())
    config["train"].update(epochs=2, num_workers=0, batch_size=2)
    config["data"]["max_train_samples"] = 4
    root = tmp_path / "kaggle"
    mount(root, "datasets/kagglekit/kagglekit-fwi-converted", converted)
    script = tmp_path / "training.py"  # what the rendered kernel runs once the wheels are installed
    script.write_text(KERNEL_BODY.format(text=yaml.safe_dump(config), root=str(root)))
    run = fwi_training(
        "kagglekit/kagglekit-fwi-converted", "tiny", yaml.safe_dump(config), 0, 1, root=root, nproc=2, script=script
    )
    out = capfd.readouterr().out
    assert "torch.distributed.run" in out and "nproc_per_node=2" in out and str(script) in out
    assert "world 2" in out  # the engine's start line: both ranks in one DDP group
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert json.loads((root / "working" / "kagglekit-training.json").read_text())["epochs_done"] == 1


def _png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


def test_vision_kernel_predicts_a_folder_competition(tmp_path):
    """A digits competition: train.csv + train_images/ + test_images/ + sample_submission.csv."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images[:100] * (255 / 16)).astype(np.uint8)
    labels = digits.target[:100]
    comp = tmp_path / "comp"
    for folder in ("train_images", "test_images"):
        (comp / folder).mkdir(parents=True)
    names = [f"img{k:03d}.png" for k in range(100)]
    for k, name in enumerate(names):
        _png(comp / ("train_images" if k < 80 else "test_images") / name, images[k])
    pd.DataFrame({"image_id": names[:80], "label": labels[:80]}).to_csv(comp / "train.csv", index=False)
    pd.DataFrame({"image_id": names[80:], "label": 0}).to_csv(comp / "sample_submission.csv", index=False)

    local = tmp_path / "local"  # the same data as a `folder` dataset, as trained locally
    local.mkdir()
    for k, name in enumerate(names):
        (local / name).symlink_to(comp / ("train_images" if k < 80 else "test_images") / name)
    frame = pd.DataFrame({"id": names, "label": [str(v) for v in labels[:80]] + [""] * 20})
    frame.to_csv(tmp_path / "labels.csv", index=False)
    overrides = [
        "data.dataset=folder",
        f"data.root={local}",
        f"data.labels_csv={tmp_path / 'labels.csv'}",
        f"out_dir={tmp_path / 'runs'}",
    ]
    cfg = load_config(ROOT / "configs" / "vision" / "tiny_digits.yaml", [*overrides, "train.epochs=1", "data.n_folds=2"])
    run = fit(cfg, fold=0, progress=False)
    weights, _ = stage_weights([run], tmp_path / "weights")

    root = tmp_path / "kaggle"
    mount(root, "competitions/digits-demo", comp)
    mount(root, "datasets/kagglekit/kagglekit-vision-weights", weights)
    out = vision_submission("kagglekit/kagglekit-vision-weights", "digits-demo", root=root, num_workers=0)
    got = pd.read_csv(out, dtype=str)
    assert list(got.columns) == ["image_id", "label"] and got["image_id"].tolist() == names[80:]
    expected = predict_runs([run], tmp_path / "pred")
    classes = np.asarray(expected.classes)
    assert got.set_index("image_id").loc[expected.ids, "label"].tolist() == classes[expected.probs.argmax(1)].tolist()
