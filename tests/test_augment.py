"""More data: fwi augment, data.roots (generated rows train only), velocity-time scaling, the
on-the-fly simulation source and a pseudo-label round, on deepwave-simulated data."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from kagglekit.config import load_config
from kagglekit.errors import UserError
from kagglekit.fwi.augment.augment import augment
from kagglekit.fwi.data.convert import recompute_folds
from kagglekit.fwi.data.datasets import ConvertedFolder, FWITrainDataset
from kagglekit.fwi.data.generated import parse_origin
from kagglekit.fwi.data.readers import DataError
from kagglekit.fwi.data.simulated import SimulatedDataset
from kagglekit.fwi.data.timescale import time_scale
from kagglekit.fwi.data.training import TrainingData
from kagglekit.fwi.maps import ParentPool
from kagglekit.fwi.physics import generate_family, simulate
from kagglekit.fwi.physics.misfit import relative_misfit
from kagglekit.fwi.predictions import Predictions
from kagglekit.fwi.task import FWITask
from tests.conftest import FWI_CONFIGS


@pytest.fixture(scope="module")
def augmented(converted, tmp_path_factory):
    """Every method once or more: pairs of (map, exact mirror)."""
    return augment(converted, tmp_path_factory.mktemp("aug") / "a", count=12, shard_size=4, seed=3, progress=False)


def test_blends_stay_in_range_and_name_both_parents(converted, tmp_path):
    out = augment(converted, tmp_path / "blend", count=6, methods="blend", shard_size=4, progress=False)
    source, gen = ConvertedFolder(converted), ConvertedFolder(out)
    folds = source.index["fold"].to_numpy()
    assert len(gen) == 6 and (gen.index["fold"] == -2).all()
    for i, origin in enumerate(gen.index["origin"]):
        method, parents = parse_origin(origin)
        assert method == "blend" and len(parents) == 2
        a, b = (np.asarray(source.velocity(int(p))) for p in parents)
        v = np.asarray(gen.velocity(i))
        assert 1500 <= v.min() and v.max() <= 4500
        # a blend of exactly these parents lies between them, pixel by pixel
        assert (v >= np.minimum(a, b) - 1e-3).all() and (v <= np.maximum(a, b) + 1e-3).all()
        assert folds[int(parents[0])] == folds[int(parents[1])]  # parents share a fold
        assert gen.index["family"][i] == source.index["family"][int(parents[0])]


def test_flip6_rows_equal_the_simulation_of_the_flipped_map(converted, augmented, tmp_path):
    gen, source = ConvertedFolder(augmented), ConvertedFolder(converted)
    mirrors = [i for i, o in enumerate(gen.index["origin"]) if "flip6" in parse_origin(o)[0]]
    assert len(mirrors) == 6  # every drawn map is written twice
    for i in mirrors[:3]:
        v = torch.from_numpy(np.array(gen.velocity(i)))
        expected = simulate(v[None])[0].half()
        torch.testing.assert_close(gen.seismic(i), expected, atol=1e-3, rtol=2e-3)
        torch.testing.assert_close(v, torch.from_numpy(np.array(gen.velocity(i - 1))).flip(-1))  # the row before, mirrored
    only = ConvertedFolder(augment(converted, tmp_path / "flip", count=2, methods="flip6", progress=False))
    parent = int(parse_origin(only.index["origin"][0])[1][0])
    np.testing.assert_array_equal(np.asarray(only.velocity(0)), np.asarray(source.velocity(parent))[:, ::-1])


def test_augment_rerun_is_a_noop_and_another_plan_is_refused(converted, tmp_path):
    # kills at any moment, then a resume: tests/test_parallel.py
    args = {"count": 7, "methods": "affine,family", "shard_size": 3, "progress": False}
    augment(converted, tmp_path / "whole", **args)
    stamp = (tmp_path / "whole" / "index.csv").stat().st_mtime_ns
    augment(converted, tmp_path / "whole", **args)
    assert (tmp_path / "whole" / "index.csv").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="other data"):
        augment(converted, tmp_path / "whole", **{**args, "count": 8})
    for bad in ({"count": 0}, {"shard_size": 0}, {"batch": 0}):
        with pytest.raises(UserError, match="must be >= 1"):
            augment(converted, tmp_path / "bad", **{**args, **bad})
    assert not (tmp_path / "bad").exists() and not (tmp_path / ".bad.partial").exists()


def test_generated_rows_never_validate_and_skip_their_parents_fold(converted, augmented, tmp_path):
    data = TrainingData([str(converted), str(augmented)])
    n_conv = len(ConvertedFolder(converted))
    for refold in (False, True):
        if refold:  # reassigned folds are honoured: parents are looked up now, not at augment time
            recompute_folds(converted, seed=7)
            data = TrainingData([str(converted), str(augmented)])
        folds = data.index["fold"].to_numpy()
        trained_generated = 0
        for fold in range(5):
            train, valid = data.split(fold)
            assert (valid < n_conv).all() and (folds[valid] == fold).all()
            for key in train[train >= n_conv]:
                trained_generated += 1
                parents = parse_origin(ConvertedFolder(augmented).index["origin"][key - n_conv])[1]
                assert all(folds[int(p)] != fold for p in parents)
        assert trained_generated >= 12 * 3  # most rows train 4 of 5 folds; generator maps all 5
    recompute_folds(converted, seed=0)
    with pytest.raises(DataError, match="must be a conversion"):
        TrainingData([str(augmented)])
    with pytest.raises(DataError, match="list that converted folder"):
        TrainingData([str(another_conversion(converted, tmp_path)), str(augmented)])


def another_conversion(converted, tmp_path):
    """A converted folder with other rows (the first 10), so the generated folder's source is missing."""
    other = tmp_path / "other"
    other.mkdir()
    ConvertedFolder(converted).index.iloc[:10].to_csv(other / "index.csv", index=False)
    (other / "manifest.json").write_text('{"format": 1, "shard_size": null, "files": [["x", 1, 2]]}')
    np.save(other / "velocity.npy", np.load(converted / "velocity.npy")[:10])
    np.save(other / "seismic.npy", np.load(converted / "seismic.npy")[:10])
    return other


def test_on_the_fly_source_is_deterministic_and_simulates_its_maps(converted):
    data = TrainingData([str(converted)])
    train, _ = data.split(0)
    pool = ParentPool(data, train)
    make = lambda where: SimulatedDataset(pool, 4, ("family", "blend", "affine"), seed=5, families=data.families, where=where)  # noqa: E731
    a, b = make("workers"), make("workers")
    first = [a[i] for i in range(4)]
    for i in range(4):
        for key in ("seismic", "velocity", "family"):
            assert torch.equal(first[i][key], b[i][key])
        expected = simulate(first[i]["velocity"][None])[0].half()
        assert torch.equal(first[i]["seismic"], expected)
    a.set_epoch(1)
    assert not torch.equal(a[0]["velocity"], first[0]["velocity"])  # a new set every epoch
    for i in range(4):  # parents are training rows only
        drawn = b.draw(i)
        assert all(int(p) in set(train.tolist()) for p in drawn.parents)
    # batched on the device: the same seismic as in a worker
    device_items = [make("device")[i] for i in range(4)]
    assert all(bool(it["pending"]) and it["seismic"].abs().max() == 0 for it in device_items)
    batch = {k: torch.stack([it[k] for it in device_items]) for k in device_items[0]}
    cfg = load_config(FWI_CONFIGS / "tiny_unet.yaml", [f"data.root={converted}"])
    filled = FWITask(cfg).prepare_batch(batch)
    torch.testing.assert_close(filled["seismic"], torch.stack([it["seismic"] for it in first]), atol=2e-3, rtol=1e-3)


def test_time_scaling_approximates_the_scaled_model_and_keeps_the_range():
    v = torch.from_numpy(generate_family("FlatVel_A", 1, seed=4))[0].clamp(max=4000)  # (70, 70)
    a = 1.1
    record = simulate(v[None])[0]  # (5, 1000, 70)
    truth = simulate((v * a)[None])[0]
    scaled, v_scaled = time_scale(record, v, a)
    assert torch.equal(v_scaled, v * a) and scaled.shape == record.shape
    err_scaled = float((scaled - truth).norm() / truth.norm())
    err_plain = float((record - truth).norm() / truth.norm())
    assert err_scaled < 0.5 * err_plain, (err_scaled, err_plain)


def test_dataset_time_scaling_stays_in_range(converted):
    data = TrainingData([str(converted)])
    dataset = FWITrainDataset(data, np.arange(len(data)), time_scale_prob=1.0, time_scale_range=(0.8, 1.2))
    torch.manual_seed(0)
    changed = 0
    for i in range(0, len(data), 7):
        item = dataset[i]
        original = torch.from_numpy(np.array(data.velocity(i)))
        assert 1500 - 1e-3 <= float(item["velocity"].min()) and float(item["velocity"].max()) <= 4500 + 1e-3
        changed += not torch.allclose(item["velocity"], original)
    assert changed > 0


def test_training_reads_roots_and_on_the_fly_data_then_a_pseudo_label_round_fine_tunes(
    converted, augmented, synthetic_competition, tmp_path
):
    from kagglekit.engine.fit import fit
    from kagglekit.fwi.pseudo import pseudo_label_round

    overrides = [
        f"data.roots=[{converted},{augmented}]",
        "data.simulate.ratio=0.25",
        "data.time_scale_prob=0.5",
        f"out_dir={tmp_path / 'runs'}",
        "train.epochs=1",
    ]
    cfg = load_config(FWI_CONFIGS / "tiny_unet.yaml", overrides)
    run = fit(cfg, fold=0, progress=False)
    assert (run / "best.pt").is_file() and (run / "oof_ids.csv").is_file()
    oof_ids = pd.read_csv(run / "oof_ids.csv")["sample_id"].to_numpy()
    assert (oof_ids < len(ConvertedFolder(converted))).all(), oof_ids  # validation: converted rows only

    comp = synthetic_competition
    report = pseudo_label_round(
        run,
        comp / "test",
        tmp_path / "round",
        finetune_minutes=0.05,
        epochs=1,
        pseudo_repeat=3,
        labels=str(comp / "test_labels.npy"),
        label_ids=str(comp / "test_ids.csv"),
        device="cpu",
        progress=False,
    )
    pseudo = ConvertedFolder(tmp_path / "round" / "pseudo")
    before = Predictions.read(tmp_path / "round" / "before" / "tiny_unet.npy")
    assert list(pseudo.index["origin"]) == [f"pseudo:{i}" for i in before.ids]
    # every pair is (simulate(map), map) for its test id's predicted map
    maps = np.clip(before.float32(), 1500, 4500)
    np.testing.assert_array_equal(np.stack([np.asarray(pseudo.velocity(i)) for i in range(len(pseudo))]), maps)
    torch.testing.assert_close(
        torch.stack([torch.as_tensor(np.asarray(pseudo.seismic(i))) for i in range(len(pseudo))]),
        simulate(torch.from_numpy(maps)).half(),
    )
    new_run = tmp_path / "runs" / "tiny_unet_pl1" / "fold0"
    assert (new_run / "best.pt").is_file()
    tuned = load_config(new_run / "config.yaml")
    assert tuned.data.roots[-1] == str(tmp_path / "round" / "pseudo") and len(tuned.data.roots) == 3
    assert tuned.data.repeats == [1, 1, 3]
    task = FWITask(tuned)
    train_keys = task.datasets(0)[0].base.sample_ids  # a MixedDataset: the run mixes in on-the-fly pairs
    pseudo_keys = train_keys[train_keys >= task.folder.offsets[2]]
    assert len(pseudo_keys) == 3 * len(pseudo) and len(set(pseudo_keys.tolist())) == len(pseudo)
    # the report's misfit and MAE are those of the stage's predictions, recomputed here
    test_ids = pd.read_csv(comp / "test_ids.csv", dtype={"id": str})["id"].tolist()
    truth = np.load(comp / "test_labels.npy")[[test_ids.index(i) for i in before.ids]]
    observed = torch.stack([torch.from_numpy(np.load(comp / "test" / f"{i}.npy")) for i in before.ids])
    for stage, path in (("before", "before/tiny_unet.npy"), ("pseudo", "pseudo/tiny_unet_pl1.npy")):
        pred = Predictions.read(tmp_path / "round" / path).reordered(before.ids).float32()
        misfit = relative_misfit(torch.from_numpy(np.clip(pred, 1500, 4500)), observed).numpy()
        assert report[stage]["misfit_mean"] == pytest.approx(misfit.mean(), rel=1e-5)
        assert report[stage]["misfit_median"] == pytest.approx(np.median(misfit), rel=1e-5)
        assert report[stage]["mae"] == pytest.approx(np.abs(pred - truth)[:, :, 1::2].mean(), rel=1e-5)
    assert report["pseudo"]["mae"] != report["before"]["mae"]  # the fine-tuned run's own predictions
    assert (tmp_path / "round" / "round.md").read_text().count("|") > 8
    with pytest.raises(UserError, match="other settings"):  # never silently reuse another round's run
        pseudo_label_round(run, comp / "test", tmp_path / "round2", finetune_minutes=0.05, epochs=1, lr_scale=0.5, progress=False)
    with pytest.raises(UserError, match="not a finished run"):
        pseudo_label_round(tmp_path / "runs", comp / "test", tmp_path / "r2", progress=False)
    kept = sorted(p.name for p in (tmp_path / "round").iterdir())
    with pytest.raises(UserError, match="holds the round of"):  # another test set into the same OUT: nothing overwritten
        pseudo_label_round(run, tmp_path / "other_test", tmp_path / "round", progress=False)
    assert sorted(p.name for p in (tmp_path / "round").iterdir()) == kept

    # --refine-minutes: a rerun re-predicts `before` (a new file, the same maps) and goes through; a
    # round cut inside its refinement (no refined.json, no pairs yet) continues the refinement
    options = {"finetune_minutes": 0.05, "epochs": 1, "name": "tiny_unet_refined", "refine_minutes": 0.1, "progress": False}
    first = pseudo_label_round(run, comp / "test", tmp_path / "round_r", device="cpu", **options)
    refined = Predictions.read(tmp_path / "round_r" / "refined" / "refined.npy")
    pairs = ConvertedFolder(tmp_path / "round_r" / "pseudo")
    np.testing.assert_array_equal(
        np.stack([np.asarray(pairs.velocity(i)) for i in range(len(pairs))]), np.clip(refined.float32(), 1500, 4500)
    )
    again = pseudo_label_round(run, comp / "test", tmp_path / "round_r", device="cpu", **options)
    assert again["refined"] == first["refined"]
    (tmp_path / "round_r" / "refined.json").unlink()
    shutil.rmtree(tmp_path / "round_r" / "pseudo")
    shutil.rmtree(tmp_path / "runs" / "tiny_unet_refined")
    cut = pseudo_label_round(run, comp / "test", tmp_path / "round_r", device="cpu", **options)
    assert cut["refined"]["misfit_mean"] <= first["refined"]["misfit_mean"]
    # the cached misfit of the first call is not reused for the refined maps of this one
    refined = Predictions.read(tmp_path / "round_r" / "refined" / "refined.npy").reordered(before.ids).float32()
    misfit = relative_misfit(torch.from_numpy(refined), observed).numpy()
    assert cut["refined"]["misfit_mean"] == pytest.approx(misfit.mean(), rel=1e-5)
