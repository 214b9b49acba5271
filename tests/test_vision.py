"""Vision side: readers on published layouts, models, QAT export, calibration, the engine path."""

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kagglekit.config import config_from_dict, load_config
from kagglekit.engine.checkpoint import load_checkpoint
from kagglekit.engine.fit import fit
from kagglekit.engine.task import build_task
from kagglekit.vision.calibration import calibration_report, ece
from kagglekit.vision.models import build_classifier
from kagglekit.vision.predict import load_vision_run, predict_probs, temperature, write_classification_csv
from kagglekit.vision.quant import apply_qat, dequantize_into, export_quantized, quantize_levels, quantized_layers
from kagglekit.vision.sources import VisionDataError, cifar10, fashion_mnist, folder_csv, hirise, read_idx
from kagglekit.vision.transforms import build_transform

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "vision"
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_idx_files():
    # real data, offline: scripts/setup.sh installs the Debian package; a machine without it fails
    # here instead of skipping silently (KAGGLEKIT_NO_FMNIST=1 skips on purpose, e.g. without root)
    if not FMNIST.is_dir():
        if os.environ.get("KAGGLEKIT_NO_FMNIST") == "1":
            pytest.skip("KAGGLEKIT_NO_FMNIST=1")
        pytest.fail(f"{FMNIST} missing: install the Debian package dataset-fashion-mnist (scripts/setup.sh does as root)")
    src = fashion_mnist(FMNIST)
    assert (src.splits == "train").sum() == 60000 and (src.splits == "test").sum() == 10000
    assert src.arrays.shape == (70000, 28, 28) and src.arrays.dtype == np.uint8
    assert np.bincount(src.labels[src.splits == "test"]).tolist() == [1000] * 10
    assert src.channels == 1


def test_idx_reader_rejects_bad_files(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(VisionDataError, match="x-idx3-ubyte: not an unsigned-byte IDX"):
        read_idx(bad)
    short = tmp_path / "y-idx1-ubyte"
    short.write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(VisionDataError, match="holds 2"):
        read_idx(short)
    with pytest.raises(VisionDataError, match="not found"):
        fashion_mnist(tmp_path)


@pytest.fixture
def hirise_tree(tmp_path, rng):
    from PIL import Image

    root = tmp_path / "hirise-map-proj-v3_2"
    images = root / "map-proj-v3_2"
    images.mkdir(parents=True)
    (tmp_path / "__MACOSX" / "hirise-map-proj-v3_2").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "hirise-map-proj-v3_2" / "._a.jpg").write_bytes(b"\x00junk")
    (root / "landmarks_map-proj-v3_2_classmap.csv").write_text(
        "0,other\n1,crater\n2,dark dune\n3,slope streak\n4,bright dune\n5,impact ejecta\n6,swiss cheese\n7,spider\n"
    )
    names = ["a.jpg", "a-r90.jpg", "b.jpg", "b-fh.jpg", "c.jpg", "d.jpg"]
    for n in names:
        Image.fromarray(rng.integers(0, 255, (227, 227), dtype=np.uint8)).save(images / n)
    (images / "._a.jpg").write_bytes(b"\x00junk")
    rows = [
        "a.jpg 1 train",
        "a-r90.jpg 1 train",
        "a.jpg 1 train",
        "b.jpg 7 train",
        "b-fh.jpg 7 train",
        "b.jpg 7 train",
        "c.jpg 0 val",
        "d.jpg 2 test",
    ]
    (root / "labels-map-proj_v3_2_train_val_test.txt").write_text("\n".join(rows) + "\n")
    (root / "labels-map-proj_v3_2.txt").write_text("\n".join(" ".join(r.split()[:2]) for r in rows) + "\n")
    return tmp_path


def test_hirise_reader_published_layout(hirise_tree):
    src = hirise(hirise_tree)
    assert src.ids == ["a.jpg", "a-r90.jpg", "b.jpg", "b-fh.jpg", "c.jpg", "d.jpg"]  # duplicates dropped
    assert src.classes[7] == "spider" and src.labels.tolist() == [1, 1, 7, 7, 0, 2]
    assert src.splits.tolist() == ["train"] * 4 + ["val", "test"]
    assert src.image(0).shape == (227, 227) and src.channels == 1
    assert len(hirise(hirise_tree, dedupe=False)) == 8  # keep the upsampling rows
    assert hirise(hirise_tree, originals_only=True).ids == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


def test_hirise_errors_name_the_problem(hirise_tree):
    root = hirise_tree / "hirise-map-proj-v3_2"
    split = root / "labels-map-proj_v3_2_train_val_test.txt"
    split.write_text(split.read_text() + "c.jpg 9 train\n")
    with pytest.raises(VisionDataError, match="unknown class id 9"):
        hirise(hirise_tree)
    split.write_text("zz.jpg 1 train\n")
    with pytest.raises(VisionDataError, match="zz.jpg"):
        hirise(hirise_tree)
    split.write_text("c.jpg 0 train\n")
    (root / "map-proj-v3_2" / "c.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VisionDataError, match="c.jpg: unreadable image"):
        hirise(hirise_tree).image(0)


def test_cifar10_reader_on_generated_batches(tmp_path, rng):
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 255, (4, 3072), dtype=np.uint8)
        data[0, 0], data[0, 1024], data[0, 2048] = 10 + k, 20, 30  # first pixel: R, G, B planes
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [k % 10, 1, 2, 3]}, f)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    src = cifar10(tmp_path)
    assert src.arrays.shape == (24, 32, 32, 3) and (src.splits == "test").sum() == 4
    assert src.image(4)[0, 0].tolist() == [11, 20, 30]  # RGB order, second batch
    assert src.classes[3] == "c3" and src.channels == 3
    (tmp_path / "test_batch").write_bytes(b"garbage")
    with pytest.raises(VisionDataError, match="test_batch: not a CIFAR pickle"):
        cifar10(tmp_path)


def test_folder_csv_reader(tmp_path, rng):
    from PIL import Image

    (tmp_path / "img").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
    pd.DataFrame({"id": ["0", "1", "2", "3"], "label": ["cat", "dog", "cat", None]}).to_csv(tmp_path / "labels.csv", index=False)
    src = folder_csv(tmp_path / "img", tmp_path / "labels.csv")
    assert src.classes == ["cat", "dog"] and src.labels.tolist() == [0, 1, 0, -1]
    assert src.splits.tolist() == ["train", "train", "train", "test"] and src.channels == 3


def test_augmentation_is_deterministic_under_a_seed():
    cfg = load_config(CONFIGS / "fmnist_resnet9.yaml").data
    image = np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)
    a = [build_transform(cfg, train=True, seed=5)(image=image)["image"] for _ in range(2)]
    t = build_transform(cfg, train=True, seed=5)
    b = [t(image=image)["image"] for _ in range(3)]
    np.testing.assert_array_equal(a[0], b[0])
    assert any(not np.array_equal(b[0], x) for x in b[1:])  # the pipeline does augment
    with pytest.raises(ValueError, match="unknown albumentations transform 'Flipp'"):
        build_transform(cfg.model_copy(update={"augment": [type(cfg.augment[0])(name="Flipp")]}), train=True, seed=0)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("alexnet", {"width": 0.25, "image_size": 8}),
        ("vgg", {"width": 8}),
        ("nin", {"width": 16}),
        ("resnet9", {"width": 8}),
        ("timm:resnet10t", {}),
    ],
)
def test_each_model_trains_a_step(name, kwargs):
    torch.manual_seed(0)
    model = build_classifier(name, 1, 10, kwargs)
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    model.eval()  # fixed BN statistics and no dropout: the same function before and after the steps
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        loss0 = float(torch.nn.functional.cross_entropy(model(x), y))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (8, 10)
    moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert sum(moved) >= 0.75 * len(moved)  # (timm zero-initialises the last BN of each block: its conv waits a step)
    assert float(torch.nn.functional.cross_entropy(out, y)) < loss0  # and the loss on the batch fell


def test_short_run_beats_chance_then_predict_and_csv(tmp_path):
    cfg = load_config(CONFIGS / "tiny_digits.yaml", [f"out_dir={tmp_path}", "train.epochs=5"])
    run = fit(cfg, fold=0, progress=False)
    best = load_checkpoint(run / "best.pt")
    assert best["metrics"]["accuracy"] > 0.8  # chance is 0.1
    assert best["temperature"] > 0 and (run / "calibration.json").is_file()
    loaded = load_vision_run(run)
    assert temperature(loaded) == best["temperature"]
    task = loaded.task
    test = task.test_dataset()
    probs = predict_probs(loaded, test)
    assert probs.shape == (len(test), 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == task.source.labels[test.indices]).mean() > 0.8
    ids = [task.source.ids[i] for i in test.indices]
    sample = tmp_path / "sample.csv"
    pd.DataFrame({"ImageId": ids[::-1], "Label": 0}).to_csv(sample, index=False)
    out = write_classification_csv(probs, ids, tmp_path / "sub.csv", sample_submission=sample)
    frame = pd.read_csv(out, dtype=str)
    assert frame.columns.tolist() == ["ImageId", "Label"] and frame["ImageId"].tolist() == ids[::-1]


def test_folds_stratified_and_test_split_untouched():
    cfg = load_config(CONFIGS / "tiny_digits.yaml")
    task = build_task(cfg)
    train, valid = task.datasets(0)
    test = task.test_dataset()
    assert set(train.indices) & set(valid.indices) == set()
    assert set(test.indices) & (set(train.indices) | set(valid.indices)) == set()
    counts = np.bincount(task.source.labels[valid.indices], minlength=10)
    assert counts.min() >= 0.8 * counts.max()  # every class in the fold


def test_qat_export_round_trip(tmp_path):
    torch.manual_seed(0)
    model = apply_qat(build_classifier("resnet9", 1, 10, {"width": 8}), bits=4)
    assert len(quantized_layers(model)) == 9
    x = torch.randn(4, 1, 16, 16)
    model(x).sum().backward()  # STE: gradients reach the float weights
    assert all(m.weight.grad is not None for _, m in quantized_layers(model))
    model.eval()
    export = export_quantized(model)
    torch.save(export, tmp_path / "int4.pt")
    assert export["size_bytes"] < export["float32_bytes"] / 4
    fresh = dequantize_into(
        apply_qat(build_classifier("resnet9", 1, 10, {"width": 8}), 4), torch.load(tmp_path / "int4.pt", weights_only=True)
    ).eval()
    fresh_layers = dict(quantized_layers(fresh))
    for name, layer in quantized_layers(model):
        levels, scale = quantize_levels(layer.weight.detach(), 4)
        packed = export["layers"][name]["codes"]
        assert packed.numel() == (levels.numel() + 1) // 2  # two 4-bit codes per byte
        codes = torch.stack([packed & 0x0F, packed >> 4], dim=1).flatten()[: levels.numel()]
        torch.testing.assert_close(codes.float() - 7.5, levels.flatten(), rtol=0, atol=0)  # the codes are the levels
        assert levels.abs().max() == 7.5 and not (levels == 0).any()  # +-0.5 .. +-7.5, no zero
        assert len(levels.unique()) > 8  # the layer uses the 4-bit range, not a few levels
        torch.testing.assert_close(fresh_layers[name].weight, levels * scale, rtol=0, atol=0)  # exactly codes x scale
    torch.testing.assert_close(fresh(x), model(x), rtol=1e-4, atol=1e-5)


def test_calibration_lowers_nll_on_overconfident_logits():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (2000,), generator=gen)
    clean = torch.nn.functional.one_hot(labels, 5).float() * 1.5 + torch.randn(2000, 5, generator=gen)
    overconfident = clean * 6.0
    report = calibration_report(overconfident, labels)
    assert report["temperature"] > 2.0
    assert report["nll_after"] < 0.7 * report["nll_before"]
    assert report["ece_after"] < report["ece_before"]
    perfect = np.eye(3)[[0, 1, 2, 0]]
    assert ece(perfect, np.array([0, 1, 2, 0])) == pytest.approx(0.0)


def test_vision_config_rejects_fwi_keys():
    with pytest.raises(Exception, match="data.flip_prob"):
        config_from_dict({"name": "v", "task": "vision", "model": {"name": "resnet9"}, "data": {"flip_prob": 0.5}})
