"""Kaggle kernel: predict the competition test set with kagglekit run folders, write submission.csv.

Inputs (no internet): the competition data and the dataset `kagglekit/kagglekit`, holding this
repository's `src/` and the `runs/<config>/fold<k>/` folders to use (config.yaml + best.pt).
Every config's folds are averaged (flip TTA on), configs are averaged with equal weight unless
`ensemble.json` (from `kagglekit fwi ensemble`) sits at the dataset root.
"""

import json
import sys
from pathlib import Path

import numpy as np

KIT = Path("/kaggle/input/kagglekit")
COMPETITION = Path("/kaggle/input/waveform-inversion")
WORK = Path("/kaggle/working")
sys.path.insert(0, str(KIT / "src"))

from kagglekit.fwi.predict import predict_runs, read_ids  # noqa: E402
from kagglekit.fwi.submission import validate_submission, write_submission  # noqa: E402

runs = sorted(p.parent for p in (KIT / "runs").glob("*/*/best.pt"))
if not runs:
    raise SystemExit(f"no run folders with best.pt under {KIT / 'runs'}")
written = predict_runs(runs, COMPETITION / "test", WORK / "pred", tta_flip=True, batch_size=64, num_workers=4)
configs = sorted({run.parent.name for run in runs})
weights = {name: 1.0 / len(configs) for name in configs}
blend_file = KIT / "ensemble.json"
if blend_file.is_file():
    report = json.loads(blend_file.read_text())
    weights = {member.split("/")[0]: w for member, w in zip(report["members"], report["weights"])}
blend = sum(weights[name] * np.load(written[name]).astype(np.float32) for name in configs)
ids = read_ids(WORK / "pred" / "ids.txt")
out = write_submission(blend, ids, COMPETITION / "sample_submission.csv", WORK / "submission.csv")
problems = validate_submission(out, COMPETITION / "sample_submission.csv")
if problems:
    raise SystemExit("invalid submission:\n" + "\n".join(map(str, problems)))
print(f"wrote {out} from {len(runs)} runs of {configs} with weights {weights}")
