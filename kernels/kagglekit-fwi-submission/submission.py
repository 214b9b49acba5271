"""Kaggle kernel: predict the competition test set with kagglekit run folders, write submission.csv.

Inputs (no internet): the competition data and the dataset `kagglekit/kagglekit`, holding this
repository's `src/` and the `runs/<config>/fold<k>/` folders to use (config.yaml + best.pt).
Every config's folds are averaged (flip TTA on), configs are averaged with equal weight unless
`ensemble.json` (from `kagglekit fwi ensemble`) sits at the dataset root.
"""

import sys
from pathlib import Path

KIT = Path("/kaggle/input/kagglekit")
COMPETITION = Path("/kaggle/input/waveform-inversion")
WORK = Path("/kaggle/working")
sys.path.insert(0, str(KIT / "src"))

from kagglekit.engine.task import register_task  # noqa: E402
from kagglekit.fwi.ensemble import blend_config_predictions  # noqa: E402
from kagglekit.fwi.predict import predict_runs  # noqa: E402
from kagglekit.fwi.spec import TASK  # noqa: E402
from kagglekit.fwi.submission import validate_submission, write_submission  # noqa: E402

register_task(TASK)  # from a source tree there is no installed entry point to find the task by
runs = sorted(p.parent for p in (KIT / "runs").glob("*/*/best.pt"))
if not runs:
    raise SystemExit(f"no run folders with best.pt under {KIT / 'runs'}")
predict_runs(runs, COMPETITION / "test", WORK / "pred", tta_flip=True, batch_size=64, num_workers=4)
configs = sorted({run.parent.name for run in runs})
blend_file = KIT / "ensemble.json"  # the blend `kagglekit fwi ensemble` fitted on OOF; else equal weights
blend, ids = blend_config_predictions(WORK / "pred", configs, blend_file if blend_file.is_file() else None)
out = write_submission(blend, ids, COMPETITION / "sample_submission.csv", WORK / "submission.csv")
problems = validate_submission(out, COMPETITION / "sample_submission.csv")
if problems:
    raise SystemExit("invalid submission:\n" + "\n".join(map(str, problems)))
print(f"wrote {out} from {len(runs)} runs of {configs}")
