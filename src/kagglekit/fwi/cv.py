"""Local CV from out-of-fold predictions: tables, per-family bars, worst-sample pictures.

Scores are the Kaggle metric (MAE over the 35 odd columns; `mae_all_columns` beside it).
Figures are drawn on `matplotlib.figure.Figure` objects: no global backend is touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kagglekit.fwi.data.training import TrainingData
from kagglekit.fwi.metrics import sample_mae
from kagglekit.fwi.oof import OOF, load_oof
from kagglekit.io import atomic_path, atomic_write_text
from kagglekit.report import markdown_table


def cv_frame(paths: list[str | Path]) -> tuple[pd.DataFrame, list[OOF]]:
    oofs = [load_oof(p) for p in paths]
    rows = []
    for oof in oofs:
        rows.append({"run": oof.name, "n": len(oof.ids), **oof.table()})
    return pd.DataFrame(rows).set_index("run"), oofs


def to_markdown(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    rows = [(name, *(int(v) if c == "n" else v for c, v in row.items())) for name, row in frame.iterrows()]
    return markdown_table(["run", *cols], rows)


def plot_family_bars(frame: pd.DataFrame, path: Path) -> None:
    families = [c for c in frame.columns if c not in ("n", "mae", "mae_all_columns")]
    fig = Figure(figsize=(max(8, len(families) * 0.9), 4))
    ax = fig.subplots()
    width = 0.8 / len(frame)
    for k, (name, row) in enumerate(frame.iterrows()):
        ax.bar(np.arange(len(families)) + k * width, row[families].to_numpy(float), width, label=f"{name} (all {row['mae']:.1f})")
    ax.set_xticks(np.arange(len(families)) + 0.4 - width / 2, families, rotation=30, ha="right")
    ax.set_ylabel("MAE (m/s), scored columns")
    ax.set_title("Out-of-fold Kaggle MAE per family")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def plot_worst(oof: OOF, path: Path, k: int = 6) -> None:
    """Rows: the k worst samples. Columns: true velocity, prediction, |error|, shot gather (source 3)."""
    err = sample_mae(oof.predictions, oof.truth)
    worst = np.argsort(err)[::-1][:k]
    folder = TrainingData(oof.data_roots)
    fig = Figure(figsize=(12, 2.6 * len(worst)))
    axes = fig.subplots(len(worst), 4, squeeze=False)
    for r, i in enumerate(worst):
        sid, fam = int(oof.ids["sample_id"].iloc[i]), oof.ids["family"].iloc[i]
        for c, (img, title, cmap, lim) in enumerate(
            [
                (oof.truth[i], f"true #{sid} {fam}", "viridis", (1500, 4500)),
                (oof.predictions[i], f"pred (MAE {err[i]:.0f})", "viridis", (1500, 4500)),
                (np.abs(oof.predictions[i] - oof.truth[i]), "|error|", "magma", (0, 1000)),
            ]
        ):
            axes[r, c].imshow(img, cmap=cmap, vmin=lim[0], vmax=lim[1])
            axes[r, c].set_title(title, fontsize=8)
        gather = folder.seismic(sid)[2].float().numpy()  # (1000, 70)
        clip = np.percentile(np.abs(gather), 98)
        axes[r, 3].imshow(gather, cmap="gray", aspect="auto", vmin=-clip, vmax=clip)
        axes[r, 3].set_title("shot gather, source 3", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")


def cv_report(paths: list[str | Path], out_dir: str | Path, worst: int = 6) -> tuple[str, dict[str, Path]]:
    """Markdown table (returned), plus cv.csv, cv_families.png and cv_worst_<run>.png in out_dir."""
    out_dir = Path(out_dir)
    frame, oofs = cv_frame(paths)
    files = {"csv": out_dir / "cv.csv", "bars": out_dir / "cv_families.png"}
    atomic_write_text(files["csv"], frame.to_csv())
    plot_family_bars(frame, files["bars"])
    for oof in oofs:
        safe = oof.name.replace("/", "_")
        files[f"worst_{safe}"] = out_dir / f"cv_worst_{safe}.png"
        plot_worst(oof, files[f"worst_{safe}"], k=worst)
    return to_markdown(frame), files
