"""Local CV from out-of-fold predictions: tables, per-family bars, worst-sample pictures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kagglekit.config import load_config  # noqa: E402
from kagglekit.fwi.data.datasets import ConvertedFolder  # noqa: E402
from kagglekit.fwi.oof import OOF, load_oof, mae_table  # noqa: E402
from kagglekit.io import atomic_path, atomic_write_text  # noqa: E402


def cv_frame(paths: list[str | Path]) -> tuple[pd.DataFrame, list[OOF]]:
    oofs = [load_oof(p) for p in paths]
    rows = []
    for oof in oofs:
        rows.append({"run": oof.name, "n": len(oof.ids), **mae_table(oof)})
    return pd.DataFrame(rows).set_index("run"), oofs


def to_markdown(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| run | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, row in frame.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{v:.0f}" if c == "n" else f"{v:.1f}" for c, v in row.items()) + " |")
    return "\n".join(lines)


def plot_family_bars(frame: pd.DataFrame, path: Path) -> None:
    families = [c for c in frame.columns if c not in ("n", "all")]
    fig, ax = plt.subplots(figsize=(max(8, len(families) * 0.9), 4))
    width = 0.8 / len(frame)
    for k, (name, row) in enumerate(frame.iterrows()):
        ax.bar(np.arange(len(families)) + k * width, row[families].to_numpy(float), width, label=f"{name} (all {row['all']:.1f})")
    ax.set_xticks(np.arange(len(families)) + 0.4 - width / 2, families, rotation=30, ha="right")
    ax.set_ylabel("MAE (m/s)")
    ax.set_title("Out-of-fold MAE per family")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_worst(oof: OOF, run_dir: Path, path: Path, k: int = 6) -> None:
    """Rows: the k worst samples. Columns: true velocity, prediction, |error|, shot gather (source 3)."""
    err = np.abs(oof.predictions - oof.truth).mean(axis=(1, 2))
    worst = np.argsort(err)[::-1][:k]
    folder = ConvertedFolder(load_config(_first_run(run_dir) / "config.yaml").data.root)
    fig, axes = plt.subplots(len(worst), 4, figsize=(12, 2.6 * len(worst)), squeeze=False)
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
    plt.close(fig)


def _first_run(path: Path) -> Path:
    return path if (path / "config.yaml").is_file() else next(p for p in sorted(path.iterdir()) if (p / "config.yaml").is_file())


def cv_report(paths: list[str | Path], out_dir: str | Path, worst: int = 6) -> tuple[str, dict[str, Path]]:
    """Markdown table (returned), plus cv.csv, cv_families.png and cv_worst_<run>.png in out_dir."""
    out_dir = Path(out_dir)
    frame, oofs = cv_frame(paths)
    files = {"csv": out_dir / "cv.csv", "bars": out_dir / "cv_families.png"}
    atomic_write_text(files["csv"], frame.to_csv())
    plot_family_bars(frame, files["bars"])
    for oof, path in zip(oofs, paths):
        safe = oof.name.replace("/", "_")
        files[f"worst_{safe}"] = out_dir / f"cv_worst_{safe}.png"
        plot_worst(oof, Path(path), files[f"worst_{safe}"], k=worst)
    return to_markdown(frame), files
