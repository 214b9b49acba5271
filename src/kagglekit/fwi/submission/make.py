"""`fwi write-csv`: predictions -> the Kaggle CSV, checked, written, validated, with its sources.

`<csv>.sources.json` beside the CSV lists the prediction file and the run folders it came from
(`Predictions.runs`), so that a leaderboard score can be recorded in those runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from kagglekit.fwi.predictions import Predictions
from kagglekit.fwi.submission.format import SubmissionError
from kagglekit.fwi.submission.sample import read_sample_submission
from kagglekit.fwi.submission.scale import MAX_CLIPPED_SHARE, check_range
from kagglekit.fwi.submission.validate import validate_submission
from kagglekit.fwi.submission.write import write_csv
from kagglekit.io import atomic_write_text
from kagglekit.parallel import remove_stale_temps


def sources_path(csv: str | Path) -> Path:
    """`<csv>.sources.json`: the prediction file and run folders a CSV was made from."""
    return Path(f"{csv}.sources.json")


def write_and_validate(
    pred: Predictions,
    sample_submission: str | Path,
    out_path: str | Path,
    *,
    max_clipped_share: float = MAX_CLIPPED_SHARE,
    max_examples: int = 3,
) -> dict:
    """Check the values (before clipping), write the CSV, validate it, write `<csv>.sources.json`.

    The sample submission is parsed once for both steps. Raises SubmissionError (listing every
    problem) if the written file does not validate, and then removes it. Returns the path, row
    count, the range check and timings."""
    t0 = time.perf_counter()
    sample = read_sample_submission(sample_submission)
    checked = check_range(pred, max_clipped_share)
    remove_stale_temps(Path(out_path).parent)  # the .NAME.tmp-<pid> files of a killed earlier run
    t1 = time.perf_counter()
    path = write_csv(pred, sample, out_path, checked=checked)
    t2 = time.perf_counter()
    problems = validate_submission(path, sample, max_examples=max_examples)
    t3 = time.perf_counter()
    if problems:
        path.unlink()
        raise SubmissionError(f"the written submission {path} is invalid:\n" + "\n".join(f"  {p}" for p in problems))
    sources = {
        "csv": str(path.resolve()),
        "predictions": str(Path(pred.path).resolve()) if pred.path else None,
        "runs": sorted(set(pred.runs)),
    }
    atomic_write_text(sources_path(path), json.dumps(sources, indent=1) + "\n")
    return {
        "path": path,
        "rows": len(sample.oid),
        "range": checked,
        "check_s": t1 - t0,  # includes reading the sample submission
        "write_s": t2 - t1,
        "validate_s": t3 - t2,
        "total_s": t3 - t0,
    }
