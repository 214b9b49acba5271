"""Image sources: the published file layouts of Fashion-MNIST, HiRISE v3.2, CIFAR-10, a generic
folder + labels CSV, and sklearn's bundled digits. Each gives images as uint8 (H, W) or
(H, W, C) arrays on demand, integer labels, class names and the official split of every item.
Missing files, unknown class ids and unreadable images raise VisionDataError naming the file.
"""

from __future__ import annotations

import gzip
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kagglekit.errors import UserError


class VisionDataError(UserError):
    pass


@dataclass
class ImageSource:
    name: str
    labels: np.ndarray  # (N,) int64
    splits: np.ndarray  # (N,) str: "train" | "val" | "test"
    classes: list[str]
    arrays: np.ndarray | None = None  # (N, H, W[, C]) uint8 when the set is small enough to hold
    paths: list[Path] = field(default_factory=list)  # otherwise one image file per item
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        if self.arrays is not None:
            return self.arrays[i]
        from PIL import Image, UnidentifiedImageError

        path = self.paths[i]
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("L") if img.mode not in ("L", "RGB") else img)
        except (OSError, UnidentifiedImageError) as exc:
            raise VisionDataError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc

    @property
    def channels(self) -> int:
        sample = self.image(0)
        return 1 if sample.ndim == 2 else sample.shape[2]


def _need(path: Path) -> Path:
    if not path.exists():
        raise VisionDataError(f"{path}: not found")
    return path


def read_idx(path: Path) -> np.ndarray:
    """IDX file (optionally .gz): ubyte arrays of any rank, as published for (Fashion-)MNIST."""
    path = _need(Path(path))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise VisionDataError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise VisionDataError(f"{path}: header says {shape} ({int(np.prod(shape))} bytes) but holds {body.size}")
    return body.reshape(shape)


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def fashion_mnist(root: str | Path = "/usr/share/datasets/fashion-mnist") -> ImageSource:
    root = Path(root)
    parts = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        if len(images) != len(labels):
            raise VisionDataError(f"{root}: {prefix} has {len(images)} images but {len(labels)} labels")
        parts.append((images, labels, np.full(len(labels), split)))
    images, labels, splits = (np.concatenate(x) for x in zip(*parts))
    _check_labels(labels, len(FASHION_CLASSES), root)
    return ImageSource("fashion_mnist", labels, splits, FASHION_CLASSES, arrays=images, ids=[str(i) for i in range(len(labels))])


def digits() -> ImageSource:
    """sklearn's 1,797 8x8 digits, rescaled to uint8; the last 20% are the 'test' split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255 / 16)).astype(np.uint8)
    splits = np.where(np.arange(len(images)) < int(0.8 * len(images)), "train", "test")
    return ImageSource(
        "digits",
        d.target.astype(np.int64),
        splits,
        [str(k) for k in range(10)],
        arrays=images,
        ids=[str(i) for i in range(len(images))],
    )


def cifar10(root: str | Path) -> ImageSource:
    """The 'python version': data_batch_1..5, test_batch, batches.meta (pickles)."""
    root = Path(root)
    meta = _unpickle(_need(root / "batches.meta"))
    classes = [c.decode() if isinstance(c, bytes) else c for c in meta[b"label_names"]]
    images, labels, splits = [], [], []
    for name, split in [(f"data_batch_{k}", "train") for k in range(1, 6)] + [("test_batch", "test")]:
        batch = _unpickle(_need(root / name))
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise VisionDataError(f"{root / name}: expected data (N, 3072), found {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # RGB planes -> (N, 32, 32, 3)
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
        splits.append(np.full(len(data), split))
    labels_all = np.concatenate(labels)
    _check_labels(labels_all, len(classes), root)
    return ImageSource(
        "cifar10",
        labels_all,
        np.concatenate(splits),
        classes,
        arrays=np.concatenate(images),
        ids=[str(i) for i in range(len(labels_all))],
    )


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as exc:
        raise VisionDataError(f"{path}: not a CIFAR pickle ({type(exc).__name__}: {exc})") from exc


HIRISE_AUGMENT = re.compile(r"-(?:r90|r180|r270|fh|fv|brt)\.jpg$")


def hirise(root: str | Path, dedupe: bool = True, originals_only: bool = False) -> ImageSource:
    """HiRISE v3.2 as unzipped: map-proj-v3_2/*.jpg, labels-map-proj_v3_2_train_val_test.txt,
    landmarks_map-proj-v3_2_classmap.csv. `__MACOSX/` and `._*` files are ignored. The split
    file repeats rows (minority upsampling): dedupe=True keeps one row per file."""
    root = Path(root)
    if (root / "hirise-map-proj-v3_2").is_dir():
        root = root / "hirise-map-proj-v3_2"
    classmap = pd.read_csv(_need(root / "landmarks_map-proj-v3_2_classmap.csv"), header=None, names=["id", "name"])
    classes = [name for _, name in sorted(zip(classmap["id"], classmap["name"]))]
    split_file = _need(root / "labels-map-proj_v3_2_train_val_test.txt")
    rows = pd.read_csv(split_file, sep=r"\s+", header=None, names=["file", "label", "split"], dtype={"file": str})
    rows = rows[~rows["file"].str.startswith("._")]
    if dedupe:
        rows = rows.drop_duplicates(subset=["file", "split"])
    if originals_only:
        rows = rows[~rows["file"].str.contains(HIRISE_AUGMENT)]
    labels = rows["label"].to_numpy(np.int64)
    _check_labels(labels, len(classes), split_file)
    image_dir = root / "map-proj-v3_2"
    paths = [image_dir / f for f in rows["file"]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise VisionDataError(f"{image_dir}: {len(missing)} listed images missing, e.g. {missing[0].name}")
    return ImageSource("hirise", labels, rows["split"].to_numpy(str), classes, paths=paths, ids=rows["file"].tolist())


def folder_csv(images: str | Path, labels_csv: str | Path) -> ImageSource:
    """Generic competition layout: an image folder and a CSV with `id,label` (id = file name or
    stem); rows whose label is empty are the test split."""
    images, labels_csv = Path(images), Path(labels_csv)
    frame = pd.read_csv(_need(labels_csv), dtype={"id": str})
    if not {"id", "label"} <= set(frame.columns):
        raise VisionDataError(f"{labels_csv}: needs columns id,label, found {frame.columns.tolist()}")
    classes = sorted(frame["label"].dropna().astype(str).unique())
    index = {c: k for k, c in enumerate(classes)}
    files = {p.stem: p for p in _need(images).iterdir() if p.is_file() and not p.name.startswith("._")}
    paths = []
    for i in frame["id"]:
        path = images / i if (images / i).is_file() else files.get(Path(i).stem)
        if path is None:
            raise VisionDataError(f"{labels_csv}: image for id {i!r} not found in {images}")
        paths.append(path)
    is_test = frame["label"].isna().to_numpy()
    labels = np.array([-1 if t else index[str(v)] for v, t in zip(frame["label"], is_test)], dtype=np.int64)
    return ImageSource("folder", labels, np.where(is_test, "test", "train"), classes, paths=paths, ids=frame["id"].tolist())


def _check_labels(labels: np.ndarray, n_classes: int, where) -> None:
    bad = labels[(labels < 0) | (labels >= n_classes)]
    if len(bad):
        raise VisionDataError(f"{where}: unknown class id {int(bad[0])} (classes are 0..{n_classes - 1})")


def load_source(cfg) -> ImageSource:
    """From a VisionDataConfig."""
    if cfg.dataset == "fashion_mnist":
        return fashion_mnist(cfg.root)
    if cfg.dataset == "digits":
        return digits()
    if cfg.dataset == "cifar10":
        return cifar10(cfg.root)
    if cfg.dataset == "hirise":
        return hirise(cfg.root, dedupe=cfg.hirise_dedupe, originals_only=cfg.hirise_originals_only)
    if cfg.dataset == "folder":
        if not cfg.labels_csv:
            raise VisionDataError("data.labels_csv is required for dataset 'folder'")
        return folder_csv(cfg.root, cfg.labels_csv)
    raise VisionDataError(f"unknown dataset {cfg.dataset!r}")
