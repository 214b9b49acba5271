"""Kaggle kernel kagglekit/kagglekit-fwi-submission: the waveform-inversion test set -> /kaggle/working/submission.csv.

Rendered by `kagglekit kaggle render-kernel fwi-submission` from src/kagglekit/kaggle/kernels.py: render
again with other options rather than editing this file. The internet is off: the code dataset's
wheels (`kagglekit kaggle stage-code`) are installed from its mounted folder, then one call of
`kagglekit.kaggle.runtime` does the work. Inputs are found under both mount layouts of
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
COMPETITION = "waveform-inversion"
# refine_minutes > 0: refine the blend by physics within that budget (where this kagglekit can)
OPTIONS = {"batch_size": 64, "refine_minutes": 0.0}

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


install_code(CODE)
from kagglekit.kaggle.runtime import fwi_submission  # noqa: E402 (installed just above)

fwi_submission(weights=WEIGHTS, competition=COMPETITION, root=ROOT, **OPTIONS)
