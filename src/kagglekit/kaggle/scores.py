"""A leaderboard score goes back to the runs a CSV was made from.

The CSV writer leaves `<csv>.sources.json` beside the CSV (`kagglekit fwi write-csv` does):
`{"runs": [run folders], ...}`. Once `kaggle submit` knows the public score, each of those runs
gets a line in its leaderboard.jsonl (`kagglekit.engine.runs.record_leaderboard_score`), which
`kagglekit runs` shows beside the CV.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kagglekit.kaggle import KaggleError


def sources_file(csv: str | os.PathLike) -> Path:
    return Path(f"{csv}.sources.json")


def csv_runs(csv: str | os.PathLike) -> list[str] | None:
    """The run folders `<csv>.sources.json` lists, or None when there is no such file."""
    path = sources_file(csv)
    if not path.is_file():
        return None
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KaggleError(f"{path}: expected JSON with a 'runs' list of run folders ({type(exc).__name__}: {exc})") from None
    if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
        raise KaggleError(f"{path}: 'runs' must be a list of run folder paths, found {str(runs)[:80]}")
    return runs


def record_score(csv: str | os.PathLike | None, competition: str, score: float, message: str) -> str:
    """Record `score` in the runs `csv` came from; one line saying where it went (or why nowhere)."""
    from kagglekit.engine.runs import record_leaderboard_score

    if csv is None:
        return "score not recorded in any run: a kernel submission has no local CSV (and no CSV.sources.json)"
    runs = csv_runs(csv)
    if runs is None:
        return f"score not recorded in any run: no {sources_file(csv)} (write the CSV with `kagglekit fwi write-csv`)"
    if not runs:
        return f"score not recorded in any run: {sources_file(csv)} lists none"
    written = record_leaderboard_score(runs, competition, score, csv, message)
    return f"recorded in {len(written)} runs: " + ", ".join(str(p) for p in written)
