"""Score a submission CSV against known test velocities (the synthetic competition's hidden labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kagglekit.fwi.constants import SCORED_COLUMNS
from kagglekit.fwi.predictions import Predictions, read_maps
from kagglekit.fwi.submission.format import COLUMNS, SubmissionError


def read_labels(labels: str | Path, label_ids: str | Path) -> tuple[np.ndarray, list[str], list[str] | None]:
    """`labels` (N, 70, 70) finite m/s and `label_ids` (CSV: id[,family] per row of `labels`) ->
    (maps, ids, families or None); anything else is one error naming the file."""
    import pandas as pd

    labels, label_ids = Path(labels), Path(label_ids)
    values = read_maps(labels, "labels file")
    if not label_ids.is_file():
        raise SubmissionError(f"{label_ids}: label ids file not found")
    try:
        frame = pd.read_csv(label_ids, dtype=str)
    except (ValueError, UnicodeDecodeError) as err:
        raise SubmissionError(f"{label_ids}: not a readable CSV ({type(err).__name__}: {err})") from None
    if "id" not in frame:
        raise SubmissionError(
            f"{label_ids}: expected a CSV with an 'id' column (and optionally 'family'), found {list(frame.columns)}"
        )
    ids = frame["id"].tolist()
    if len(ids) != len(values):
        raise SubmissionError(f"{label_ids}: {len(ids)} ids for the {len(values)} maps of {labels}")
    if frame["id"].duplicated().any():
        raise SubmissionError(f"{label_ids}: duplicate ids, e.g. {frame['id'][frame['id'].duplicated()].tolist()[:3]}")
    truth = Predictions(values, ids, labels)  # (N, 70, 70) or one error naming the shape found
    truth.check_finite()
    return values, ids, frame["family"].tolist() if "family" in frame else None


def score_submission(csv: str | Path, labels: np.ndarray, ids: list[str], families: list[str] | None = None) -> dict[str, float]:
    """MAE of a submission against known velocities (N, 70, 70), overall and per family; the CSV must
    hold exactly the labelled ids."""
    import pandas as pd

    try:
        frame = pd.read_csv(csv, dtype={"oid_ypos": str})
        values = frame[COLUMNS[1:]].to_numpy(np.float64)  # (rows, 35)
        parts = frame["oid_ypos"].str.rsplit("_y_", n=1, expand=True)  # (rows, 2): id, y
        ys = parts[1].astype(int).to_numpy()
    except (OSError, ValueError, KeyError) as err:
        raise SubmissionError(f"{csv}: cannot score it ({type(err).__name__}: {err}); check it with `fwi validate`") from None
    rows = pd.Index(ids).get_indexer(parts[0])
    if (rows < 0).any():
        raise SubmissionError(f"{csv}: id {parts[0][np.argmax(rows < 0)]!r} has no label (line {int(np.argmax(rows < 0)) + 2})")
    unscored = sorted(set(ids) - set(parts[0]))
    if unscored:
        raise SubmissionError(f"{csv}: {len(unscored)} labelled ids have no rows, e.g. {unscored[:3]}")
    truth = np.asarray(labels)[rows, ys][:, SCORED_COLUMNS]
    err = np.abs(values - truth).mean(axis=1)
    metrics = {"mae": float(err.mean())}
    if families is not None:
        fam = np.asarray(families)[rows]
        for name in sorted(set(fam)):
            metrics[f"mae/{name}"] = float(err[fam == name].mean())
    return metrics


def score_table(csv: str | Path, labels: str | Path, label_ids: str | Path) -> str:
    """`fwi score`: the Kaggle MAE of a submission against known velocities, per family when
    `label_ids` (id[,family] per row of `labels`) names them, as a Markdown table."""
    from kagglekit.report import markdown_table

    values, ids, families = read_labels(labels, label_ids)
    metrics = score_submission(csv, values, ids, families)
    rows = [(key.split("/", 1)[1], value) for key, value in metrics.items() if key.startswith("mae/")]
    rows.append(("all", metrics["mae"]))
    return markdown_table(["family", "MAE (m/s), Kaggle metric"], rows, digits=2)
