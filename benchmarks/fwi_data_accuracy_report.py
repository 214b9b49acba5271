"""Table (markdown) and curve (PNG) of `benchmarks/fwi_data_accuracy.sh`: validation MAE (Kaggle
metric) against training minutes for every run, best epoch per run, the best-model / InversionNet
ratio per budget, and the pseudo-label round's report.

    .venv/bin/python benchmarks/fwi_data_accuracy_report.py runs/data_inversionnet_5m runs/data_unet_5m \
        --round runs/pseudo/data_unet_20m_fold0 --out benchmarks/results/fwi_data_accuracy
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from matplotlib.figure import Figure

from kagglekit.engine.runs import RunFolder
from kagglekit.fwi.pseudo import round_table
from kagglekit.io import atomic_path, atomic_write_text
from kagglekit.report import markdown_table


def read_run(path: Path) -> dict:
    rows = RunFolder(path / "fold0").read_metrics()
    if not rows:
        raise SystemExit(f"{path}: no epochs in metrics.jsonl")
    model, budget = re.fullmatch(r"data_(\w+?)_(\d+)m", path.name).groups()
    best = min(rows, key=lambda r: r["valid/mae"])
    return {"name": path.name, "model": model, "budget": int(budget), "rows": rows, "best": best, "last": rows[-1]}


def training_rows(run: Path) -> str:
    """What fold 0 of `run` trains on per epoch: converted rows, generated rows, on-the-fly pairs."""
    from kagglekit.fwi.task import FWITask

    task = FWITask(RunFolder(run / "fold0").config())
    train, valid = task.datasets(0)
    base = getattr(train, "base", train)
    generated = task.folder.index["generated"].to_numpy()[base.sample_ids]
    on_the_fly = len(train) - len(base)
    return (
        f"{run.name} fold 0 per epoch: {int((~generated).sum())} converted + {int(generated.sum())} generated rows "
        f"+ {on_the_fly} on-the-fly pairs; {len(valid)} validation rows"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="runs/data_<model>_<budget>m folders")
    parser.add_argument("--round", type=Path, default=None, help="pseudo-label round folder (round.json)")
    parser.add_argument("--out", type=Path, required=True, help="output stem: <out>.md and <out>.png")
    args = parser.parse_args()
    runs = [read_run(p) for p in args.runs]

    rows = []
    for r in runs:
        b, last = r["best"], r["last"]
        rows.append(
            (
                r["model"],
                r["budget"],
                f"{b['valid/mae']:.1f}",
                b["epoch"],
                f"{last['epochs_done']:.2f}",
                f"{last['elapsed_s'] / 60:.1f}",
            )
        )
    parts = [
        markdown_table(
            ["model", "budget (min)", "best valid MAE", "best epoch", "epochs done", "minutes (incl. validation)"], rows
        ),
        training_rows(args.runs[0]),
    ]

    ratio_rows = []
    for budget in sorted({r["budget"] for r in runs}):
        by_model = {r["model"]: r["best"]["valid/mae"] for r in runs if r["budget"] == budget}
        if {"unet", "inversionnet"} <= by_model.keys():
            ratio_rows.append(
                (
                    budget,
                    f"{by_model['inversionnet']:.1f}",
                    f"{by_model['unet']:.1f}",
                    f"{by_model['unet'] / by_model['inversionnet']:.2f}",
                )
            )
    if ratio_rows:
        parts.append(markdown_table(["budget (min)", "InversionNet", "UNet", "UNet / InversionNet"], ratio_rows))

    longest = max(r["budget"] for r in runs)
    pair = {r["model"]: r["best"] for r in runs if r["budget"] == longest}
    if len(pair) == 2:
        families = sorted(k.removeprefix("valid/mae/") for k in pair["unet"] if k.startswith("valid/mae/"))
        fam_rows = [
            (
                f,
                f"{pair['inversionnet'][f'valid/mae/{f}']:.1f}",
                f"{pair['unet'][f'valid/mae/{f}']:.1f}",
                f"{pair['unet'][f'valid/mae/{f}'] / pair['inversionnet'][f'valid/mae/{f}']:.2f}",
            )
            for f in families
        ]
        parts.append(
            f"Per family at {longest} minutes (best epochs):\n\n"
            + markdown_table(["family", "InversionNet", "UNet", "ratio"], fam_rows)
        )

    if args.round is not None and (args.round / "round.json").is_file():
        parts.append("Pseudo-label round:\n\n" + round_table(json.loads((args.round / "round.json").read_text())))
    atomic_write_text(args.out.with_suffix(".md"), "\n\n".join(parts) + "\n")
    print("\n\n".join(parts))

    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    colours = {"inversionnet": "tab:orange", "unet": "tab:blue"}
    for r in runs:
        x = [row["elapsed_s"] / 60 for row in r["rows"]]
        y = [row["valid/mae"] for row in r["rows"]]
        style = "-" if r["budget"] == longest else "--"
        ax.plot(
            x, y, style, marker="o", ms=3, color=colours.get(r["model"], "k"), label=f"{r['model']}, {r['budget']}-min budget"
        )
    ax.set_xlabel("training minutes (2-core CPU, including validation)")
    ax.set_ylabel("validation MAE, Kaggle metric (m/s)")
    ax.set_title("Embedded default, fold 0: converted + augmented + on-the-fly data")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(args.out.with_suffix(".png")) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
