"""The Kaggle submission format of waveform inversion and its error type.

`oid_ypos,x_1,x_3,...,x_69`: one row per (id, depth row y), `oid_ypos = f"{id}_y_{y}"`, value =
velocity[y, x] for the scored columns (kagglekit.fwi.constants.SCORED_COLUMNS); metric = MAE over
those values.
"""

from __future__ import annotations

import csv
from pathlib import Path

from kagglekit.errors import UserError
from kagglekit.fwi.constants import SCORED_COLUMNS

COLUMNS = ["oid_ypos", *(f"x_{x}" for x in SCORED_COLUMNS)]
HEADER = ",".join(COLUMNS)


class SubmissionError(UserError):
    """A submission CSV, its sample submission, its predictions or its labels are not as expected."""


def csv_header(path: str | Path) -> list[str]:
    """The column names of a CSV file (its first line; [] for an empty file)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        line = f.readline()
    return next(csv.reader([line]), []) if line else []
