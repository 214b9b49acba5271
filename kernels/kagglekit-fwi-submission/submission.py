"""Kaggle kernel kagglekit/kagglekit-fwi-submission: the waveform-inversion test set -> /kaggle/working/submission.csv.

Rendered by `kagglekit kaggle render-kernel fwi-submission` (a kind declared in kagglekit.fwi.kernels): render again
with other options rather than editing this file. The internet is off: the code dataset's wheels
(`kagglekit kaggle stage-code`) are installed from its mounted folder, then one call of
`kagglekit.fwi.kernels.fwi_submission` does the work. Inputs are found under both mount layouts of
/kaggle/input (root overridable with KAGGLEKIT_KAGGLE_ROOT).
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

CODE = "kagglekit/kagglekit-code"  # `kagglekit kaggle stage-code` output
WEIGHTS = "kagglekit/kagglekit-fwi-weights"  # `kagglekit kaggle stage-weights` output: a dataset, or a model owner/model/framework/variation/N
COMPETITION = "waveform-inversion"  # the competition whose test set is predicted
BATCH_SIZE = 64  # test samples per forward pass
REFINE_MINUTES = 0.0  # physics refinement budget in minutes, choosing the maps included (0: off)
REFINE_ITERS = None  # iterations per refined map (None: `fwi refine`'s default)

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
from kagglekit.fwi.kernels import fwi_submission  # noqa: E402 (installed just above)

fwi_submission(
    weights=WEIGHTS,
    competition=COMPETITION,
    batch_size=BATCH_SIZE,
    refine_minutes=REFINE_MINUTES,
    refine_iters=REFINE_ITERS,
    root=ROOT,
)
