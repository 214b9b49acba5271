"""Readers, conversion, folds and datasets on tiny trees in both layouts."""

import numpy as np
import pandas as pd
import pytest
import torch

from kagglekit.folds import assign_folds
from kagglekit.fwi.data import DataError, KaggleTrainSamples, OpenFWIFiles, TestFolder, flip_seismic, flip_velocity
from kagglekit.fwi.data.convert import convert, recompute_folds
from kagglekit.fwi.data.datasets import ConvertedFolder, FWITestDataset, FWITrainDataset
from kagglekit.fwi.data.training import TrainingData


def make_pair(folder, seis_name, vel_name, n, rng, dtype=np.float32):
    (folder / seis_name).parent.mkdir(parents=True, exist_ok=True)
    (folder / vel_name).parent.mkdir(parents=True, exist_ok=True)
    seismic = (rng.standard_normal((n, 5, 1000, 70)) * 10).astype(dtype)
    velocity = rng.uniform(1500, 4500, (n, 1, 70, 70)).astype(dtype)
    np.save(folder / seis_name, seismic)
    np.save(folder / vel_name, velocity)
    return seismic, velocity


@pytest.fixture
def mixed_tree(tmp_path, rng):
    """Vel layout (data/, model/), fault layout (seis*/vel*) and a flat float16 OpenFWI folder."""
    root = tmp_path / "train"
    arrays = {}
    arrays["a"] = make_pair(root / "FlatVel_A", "data/data1.npy", "model/model1.npy", 3, rng)
    arrays["b"] = make_pair(root / "FlatVel_A", "data/data2.npy", "model/model2.npy", 2, rng)
    arrays["c"] = make_pair(root / "CurveFault_B", "seis6_1_0.npy", "vel6_1_0.npy", 4, rng)
    arrays["d"] = make_pair(root / "Style_B", "data10.npy", "model10.npy", 2, rng, dtype=np.float16)
    return root, arrays


def test_reader_finds_both_layouts_and_pairs(mixed_tree):
    root, _ = mixed_tree
    files = OpenFWIFiles(root)
    assert len(files) == 11
    names = [(p.family, p.seismic_path.name, p.velocity_path.name) for p in files.pairs]
    assert ("FlatVel_A", "data1.npy", "model1.npy") in names
    assert ("CurveFault_B", "seis6_1_0.npy", "vel6_1_0.npy") in names
    assert ("Style_B", "data10.npy", "model10.npy") in names
    with pytest.raises(DataError, match="missing families"):
        KaggleTrainSamples(root)


def test_misshaped_file_is_named(mixed_tree):
    root, _ = mixed_tree
    bad = root / "FlatVel_A" / "data" / "data2.npy"
    np.save(bad, np.zeros((2, 5, 999, 70), np.float32))
    with pytest.raises(DataError) as err:
        OpenFWIFiles(root)
    assert str(bad) in str(err.value) and "(2, 5, 999, 70)" in str(err.value)


def test_corrupt_and_missing_files_are_named(mixed_tree):
    root, _ = mixed_tree
    corrupt = root / "CurveFault_B" / "vel6_1_0.npy"
    corrupt.write_bytes(b"not an npy file at all")
    with pytest.raises(DataError, match="vel6_1_0.npy: expected a .npy array, found a file starting"):
        OpenFWIFiles(root)
    corrupt.unlink()
    with pytest.raises(DataError, match="vel6_1_0.npy: file not found"):
        OpenFWIFiles(root)


def test_sample_count_mismatch(mixed_tree, rng):
    root, _ = mixed_tree
    np.save(root / "CurveFault_B" / "vel6_1_0.npy", np.full((3, 1, 70, 70), 2000, np.float32))
    with pytest.raises(DataError, match="4 samples but its velocity file"):
        OpenFWIFiles(root)


def test_wrong_dtype(mixed_tree):
    root, _ = mixed_tree
    np.save(root / "CurveFault_B" / "vel6_1_0.npy", np.full((4, 1, 70, 70), 2000, np.int32))
    with pytest.raises(DataError, match="found dtype int32"):
        OpenFWIFiles(root)


def test_convert_round_trip(mixed_tree, tmp_path):
    root, arrays = mixed_tree
    out = convert(root, tmp_path / "conv", progress=False)
    folder = ConvertedFolder(out)
    index = folder.index
    assert list(index.columns[:4]) == ["sample_id", "family", "source_file", "index_in_file"]
    assert "fold" in index.columns and len(index) == 11
    seismic = np.load(out / "seismic.npy", mmap_mode="r")
    assert seismic.dtype == np.float16 and seismic.shape == (11, 5, 1000, 70)
    for _, row in index.iterrows():
        key = {
            "FlatVel_A/data/data1.npy": "a",
            "FlatVel_A/data/data2.npy": "b",
            "CurveFault_B/seis6_1_0.npy": "c",
            "Style_B/data10.npy": "d",
        }[row.source_file]
        src_seis, src_vel = arrays[key]
        np.testing.assert_array_equal(folder.seismic(row.sample_id), src_seis[row.index_in_file].astype(np.float16))
        np.testing.assert_array_equal(folder.velocity(row.sample_id), src_vel[row.index_in_file, 0].astype(np.float32))


def test_convert_sharded_matches_single(mixed_tree, tmp_path):
    root, _ = mixed_tree
    single = ConvertedFolder(convert(root, tmp_path / "one", progress=False))
    sharded = ConvertedFolder(convert(root, tmp_path / "sharded", shard_size=4, progress=False))
    assert sorted(p.name for p in (tmp_path / "sharded").glob("seismic_*.npy")) == [
        "seismic_00000.npy",
        "seismic_00001.npy",
        "seismic_00002.npy",
    ]
    for sid in range(11):
        np.testing.assert_array_equal(single.seismic(sid), sharded.seismic(sid))


def test_convert_rerun_is_noop_and_other_conversion_rejected(mixed_tree, tmp_path, rng):
    root, _ = mixed_tree
    out = convert(root, tmp_path / "conv", progress=False)
    stamp = (out / "seismic.npy").stat().st_mtime_ns
    index_before = (out / "index.csv").read_bytes()
    convert(root, out, progress=False)
    assert (out / "seismic.npy").stat().st_mtime_ns == stamp
    assert (out / "index.csv").read_bytes() == index_before  # a rerun never reshuffles folds
    with pytest.raises(DataError, match="kagglekit fwi folds"):
        convert(root, out, seed=5, progress=False)  # other fold options: refused, folds untouched
    assert (out / "index.csv").read_bytes() == index_before
    with pytest.raises(DataError, match="different conversion"):
        convert(root, out, shard_size=5, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(DataError, match="not a kagglekit conversion"):
        convert(root, tmp_path / "junk", progress=False)


def test_nan_input_fails_and_leaves_nothing_then_rerun_works(mixed_tree, tmp_path, rng):
    root, arrays = mixed_tree
    path = root / "Style_B" / "data10.npy"
    bad = arrays["d"][0].copy()
    bad[1, 2, 3, 4] = np.nan
    np.save(path, bad)
    with pytest.raises(DataError) as err:
        convert(root, tmp_path / "conv", progress=False)
    assert str(path) in str(err.value) and "sample 1" in str(err.value)
    assert not (tmp_path / "conv").exists()
    np.save(path, arrays["d"][0])
    assert (convert(root, tmp_path / "conv", progress=False) / "manifest.json").is_file()
    assert not (tmp_path / ".conv.partial").exists()


def test_float16_overflow_is_an_error(tmp_path, rng):
    root = tmp_path / "train"
    seismic, _ = make_pair(root / "FlatVel_B", "data/data1.npy", "model/model1.npy", 2, rng)
    seismic[0, 0, 0, 0] = 1e6
    np.save(root / "FlatVel_B" / "data" / "data1.npy", seismic)
    with pytest.raises(DataError, match="overflows float16"):
        convert(root, tmp_path / "conv", progress=False)


def test_folds_stratified_deterministic_with_holdout():
    families = np.array(["A"] * 50 + ["B"] * 30 + ["C"] * 20)
    folds = assign_folds(families, n_folds=5, seed=3, holdout=0.1)
    assert np.array_equal(folds, assign_folds(families, n_folds=5, seed=3, holdout=0.1))
    assert not np.array_equal(folds, assign_folds(families, n_folds=5, seed=4, holdout=0.1))
    for fam, n in (("A", 50), ("B", 30), ("C", 20)):
        f = folds[families == fam]
        assert (f == -1).sum() == round(0.1 * n)
        counts = np.bincount(f[f >= 0], minlength=5)
        assert counts.max() - counts.min() <= 1  # stratified: each family spread evenly
    sizes = np.bincount(folds[folds >= 0])
    assert sizes.max() - sizes.min() <= 1


def test_recompute_folds_without_reconverting(mixed_tree, tmp_path):
    root, _ = mixed_tree
    out = convert(root, tmp_path / "conv", progress=False)
    before = (out / "seismic.npy").stat().st_mtime_ns
    index = recompute_folds(out, n_folds=2, seed=1, holdout=0.25)
    assert set(index["fold"]) <= {-1, 0, 1} and (index["fold"] == -1).any()
    assert pd.read_csv(out / "index.csv")["fold"].tolist() == index["fold"].tolist()
    assert (out / "seismic.npy").stat().st_mtime_ns == before


def test_train_dataset_items_and_flip(mixed_tree, tmp_path):
    root, arrays = mixed_tree
    folder = ConvertedFolder(convert(root, tmp_path / "conv", progress=False))
    plain = FWITrainDataset(folder, np.arange(11), flip_prob=0.0)
    flipped = FWITrainDataset(folder, np.arange(11), flip_prob=1.0)
    a, b = plain[3], flipped[3]
    assert a["seismic"].shape == (5, 1000, 70) and a["seismic"].dtype == torch.float16  # cast on device
    np.testing.assert_array_equal(a["seismic"].numpy(), np.load(tmp_path / "conv" / "seismic.npy")[3])
    assert a["velocity"].shape == (70, 70)
    assert torch.equal(b["seismic"], flip_seismic(a["seismic"]))
    assert torch.equal(b["velocity"], flip_velocity(a["velocity"]))
    assert torch.equal(b["seismic"][0, :, 0], a["seismic"][4, :, 69])  # source 0 <-> source 4, mirrored


def test_family_codes_index_the_sorted_families_of_each_table(mixed_tree, tmp_path, rng):
    root, _ = mixed_tree
    make_pair(tmp_path / "more" / "CurveVel_A", "data/data1.npy", "model/model1.npy", 5, rng)
    first = ConvertedFolder(convert(root, tmp_path / "first", progress=False))
    data = TrainingData([str(first.root), str(convert(tmp_path / "more", tmp_path / "second", progress=False))])
    assert first.families == ["CurveFault_B", "FlatVel_A", "Style_B"]
    assert data.families == ["CurveFault_B", "CurveVel_A", "FlatVel_A", "Style_B"]  # the union, re-coded
    for table in (first, data):
        codes = table.family_codes()
        assert codes.dtype == np.int64 and len(codes) == len(table)
        assert (np.asarray(table.families)[codes] == table.index["family"].to_numpy()).all()
    item = FWITrainDataset(data, np.arange(len(data)))[0]  # key 0: the first folder's sample 0
    assert data.families[int(item["family"])] == first.index["family"][0]


def test_test_folder_checks_files(tmp_path, rng):
    root = tmp_path / "test"
    root.mkdir()
    np.save(root / "0123456789.npy", rng.standard_normal((5, 1000, 70)).astype(np.float32))
    ds = FWITestDataset(root)
    assert ds.ids == ["0123456789"] and ds[0]["seismic"].shape == (5, 1000, 70)
    np.save(root / "abcdefabcd.npy", np.zeros((5, 1000, 69), np.float32))
    with pytest.raises(DataError, match="abcdefabcd.npy"):
        TestFolder(root).read(1)
    np.save(root / "BAD.npy", np.zeros(1))
    with pytest.raises(DataError, match="10 lowercase hex"):
        TestFolder(root)
