"""Are these predictions velocities in m/s? Checked before the writer clips them to 1500-4500.

Clipping a few values that overshoot the range is the writer's job; clipping a whole file that is
in km/s (or a blend gone wrong) would turn it into a constant CSV that still validates. So the
writer first measures the scored values outside the range and refuses when more than a small share
lies there (naming the range found, and the likely unit when the median is plainly not m/s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kagglekit.fwi.constants import SCORED_COLUMNS, VMAX, VMIN
from kagglekit.fwi.predictions import Predictions
from kagglekit.fwi.submission.format import SubmissionError

MAX_CLIPPED_SHARE = 0.01  # refuse when more than this share of the scored values lies outside 1500-4500
_CHUNK = 4096  # maps per pass (bounded memory on memmaps)
_MEDIAN_MAPS = 64  # maps, evenly spaced, whose values estimate the median


@dataclass(frozen=True)
class RangeCheck:
    """The scored values of a prediction file against 1500-4500 m/s, before clipping."""

    values: int  # scored values checked
    clipped: int  # of which outside 1500-4500
    low: float  # smallest value
    high: float  # largest value
    median: float  # (estimated from up to 64 maps)
    mean_shift: float  # mean |change| of a clipped value (m/s)
    max_shift: float  # largest |change| (m/s)

    @property
    def share(self) -> float:
        return self.clipped / self.values if self.values else 0.0

    def summary(self) -> str:
        if not self.clipped:
            return f"all {self.values:,} scored values in {VMIN:.0f}-{VMAX:.0f} m/s (none clipped)"
        return (
            f"clipped {self.clipped:,} of {self.values:,} scored values ({self.share:.3%}) to {VMIN:.0f}-{VMAX:.0f} m/s, "
            f"by {self.mean_shift:.1f} m/s on average, at most {self.max_shift:.1f} m/s"
        )


def check_range(pred: Predictions, max_share: float = MAX_CLIPPED_SHARE) -> RangeCheck:
    """Measure the scored values outside 1500-4500 m/s; SubmissionError (one line naming the file,
    the share and the range found) when more than `max_share` of them lie there."""
    n = len(pred)
    clipped, shift_sum, max_shift = 0, 0.0, 0.0
    low, high = np.inf, -np.inf
    for start in range(0, n, _CHUNK):
        block = np.asarray(pred.values[start : start + _CHUNK, :, SCORED_COLUMNS], dtype=np.float32)  # (k, 70, 35)
        lo, hi = float(block.min()), float(block.max())  # NaN propagates through both
        if not (np.isfinite(lo) and np.isfinite(hi)):
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=(1, 2)))[0])
            raise SubmissionError(f"{pred.path or 'predictions'}: non-finite prediction for id {pred.ids[bad]}")
        low, high = min(low, lo), max(high, hi)
        if lo >= VMIN and hi <= VMAX:  # the usual case: nothing to clip in this chunk
            continue
        shift = np.maximum(VMIN - block, 0) + np.maximum(block - VMAX, 0)  # |clip(v) - v|
        outside = shift > 0
        clipped += int(outside.sum())
        shift_sum += float(shift[outside].sum(dtype=np.float64))
        max_shift = max(max_shift, float(shift.max()))
    rows = np.unique(np.linspace(0, n - 1, min(n, _MEDIAN_MAPS)).astype(int)) if n else np.zeros(0, int)
    median = float(np.median(np.asarray(pred.values[rows][:, :, SCORED_COLUMNS], dtype=np.float32))) if n else float("nan")
    check = RangeCheck(
        n * len(SCORED_COLUMNS) * pred.values.shape[1], clipped, low, high, median, shift_sum / max(clipped, 1), max_shift
    )
    if check.share > max_share:
        raise SubmissionError(
            f"{pred.path or 'predictions'}: {check.share:.1%} of the scored values lie outside {VMIN:.0f}-{VMAX:.0f} m/s "
            f"(found {check.low:.4g} to {check.high:.4g}, median {check.median:.4g}{_unit_hint(check.median)}); "
            f"refusing to clip more than {max_share:.0%} of them"
        )
    return check


def _unit_hint(median: float) -> str:
    if median < 10:
        return ": km/s? the CSV takes m/s"
    if median < VMIN / 2 or median > 2 * VMAX:
        return ": not m/s? the CSV takes m/s"
    return ""
