"""Kaggle kernel kagglekit/kagglekit-fwi-training: train one fold of a waveform-inversion config, resumable across sessions.

Rendered by `kagglekit kaggle render-kernel fwi-training` (a kind declared in kagglekit.fwi.kernels): render again
with other options rather than editing this file. The internet is off: the code dataset's wheels
(`kagglekit kaggle stage-code`) are installed from its mounted folder, then one call of
`kagglekit.fwi.kernels.fwi_training` does the work. Inputs are found under both mount layouts of
/kaggle/input (root overridable with KAGGLEKIT_KAGGLE_ROOT).
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

CODE = "kagglekit/kagglekit-code"  # `kagglekit kaggle stage-code` output
DATA = "kagglekit/kagglekit-fwi-converted"  # `kagglekit fwi convert` output, uploaded as a dataset
RESUME_FROM = None  # this kernel (owner/slug) whose earlier output holds the run to continue
FOLD = 0  # the fold to train (-1: all folds, holdout validation)
EPOCHS_PER_SESSION = 10  # epochs per Kaggle session (0: all); then push again with --resume-from
CONFIG_NAME = "hgnet_b2"
CONFIG_YAML = """
# HGNet-V2 UNet (brendanartley recipe): hgnetv2_b2, EMA 0.99, flip augmentation (+ flip TTA at predict).
# pretrained: a local timm hgnetv2_b2 checkpoint file, if you have one.
task: fwi
model:
  name: hgnet
  kwargs: {backbone: hgnetv2_b2, decoder_channels: [256, 128, 64, 32]}
  pretrained: null
data: {root: data/openfwi/converted, flip_prob: 0.5}
train: {epochs: 30, batch_size: 64, lr: 3.0e-4, weight_decay: 1.0e-2, warmup_epochs: 1, ema_decay: 0.99, amp: auto, num_workers: 8}
"""

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
from kagglekit.fwi.kernels import fwi_training  # noqa: E402 (installed just above)

fwi_training(
    data=DATA,
    resume_from=RESUME_FROM,
    fold=FOLD,
    epochs_per_session=EPOCHS_PER_SESSION,
    config_name=CONFIG_NAME,
    config_yaml=CONFIG_YAML,
    root=ROOT,
)
