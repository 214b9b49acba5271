"""Kaggle kernel kagglekit/kagglekit-vision-submission: an image-classification test set -> /kaggle/working/submission.csv.

Rendered by `kagglekit kaggle render-kernel vision-submission` (a kind declared in kagglekit.vision.kernels): render again
with other options rather than editing this file. The internet is off: the code dataset's wheels
(`kagglekit kaggle stage-code`) are installed from its mounted folder, then one call of
`kagglekit.vision.kernels.vision_submission` does the work. Inputs are found under both mount layouts of
/kaggle/input (root overridable with KAGGLEKIT_KAGGLE_ROOT).
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

CODE = "kagglekit/kagglekit-code"  # `kagglekit kaggle stage-code` output
WEIGHTS = "kagglekit/kagglekit-vision-weights"  # `kagglekit kaggle stage-weights` output of vision runs (dataset or model)
COMPETITION = "cassava-leaf-disease-classification"  # an image-classification competition
BATCH_SIZE = 128  # test images per forward pass
TRAIN_CSV = "train.csv"  # the competition's id,label CSV of the training images
TRAIN_IMAGES = "train_images"  # the competition's folder of training images
TEST_IMAGES = "test_images"  # the competition's folder of test images

ROOT = Path(os.environ.get("KAGGLEKIT_KAGGLE_ROOT", "/kaggle"))


def install_code(handle: str) -> None:
    """pip-install the pinned wheels of the code dataset `handle` from its mounted folder, offline."""
    owner, slug = handle.split("/")[:2]
    inputs = ROOT / "input"
    for folder in (inputs / "datasets" / owner / slug, inputs / slug):  # newer and older mount layout
        if (folder / "manifest.json").is_file():
            break
    else:
        found = sorted(str(p.relative_to(inputs)) for p in inputs.glob("*/*"))
        sys.exit(f"code dataset {handle} is not attached: no manifest.json in datasets/{owner}/{slug} or {slug} of {found}")
    pins = [f"{w['name']}=={w['version']}" for w in json.loads((folder / "manifest.json").read_text())["wheels"]]
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check"]
    subprocess.run([*pip, "--find-links", str(folder), *pins], check=True)
    importlib.invalidate_caches()


if "LOCAL_RANK" not in os.environ:  # torchrun's workers start after their launcher (this script) installed it
    install_code(CODE)
from kagglekit.vision.kernels import vision_submission  # noqa: E402 (installed just above)

vision_submission(
    weights=WEIGHTS,
    competition=COMPETITION,
    batch_size=BATCH_SIZE,
    train_csv=TRAIN_CSV,
    train_images=TRAIN_IMAGES,
    test_images=TEST_IMAGES,
    root=ROOT,
)
