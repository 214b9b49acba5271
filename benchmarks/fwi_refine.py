"""Test-time refinement on the embedded default's test set (100 maps with hidden labels).

    .venv/bin/python benchmarks/fwi_refine.py [--run runs/small_unet/fold0] [--samples 16] [--iters 80]

Starts from the run's flip-TTA predictions (the main job's model by default), refines the
`--samples` worst-fitting maps with `kagglekit fwi refine`'s code (fresh output folder), and
reports MAE (Kaggle metric) before/after per family and overall on the refined maps, their
relative misfit before/after, and CPU seconds per sample-iteration.
Targets: refined maps' MAE down >= 25% overall and >= 50% on flat layers; <= 0.4 s per
sample-iteration on 2 cores.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kagglekit.fwi.metrics import sample_mae
from kagglekit.fwi.physics.refine import RefineSettings
from kagglekit.fwi.predict import predict_runs
from kagglekit.fwi.refine import refine_file
from kagglekit.io import read_ids
from kagglekit.report import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--run", default="runs/small_unet/fold0", help="run folder whose predictions are refined")
    parser.add_argument(
        "--competition", default="data/synthetic", help="synthetic competition (test/, test_labels.npy, test_ids.csv)"
    )
    parser.add_argument("--samples", type=int, default=16, help="maps refined (the worst-fitting first)")
    parser.add_argument("--iters", type=int, default=80, help="optimiser iterations per map")
    parser.add_argument("--batch-size", type=int, default=8, help="maps optimised together")
    parser.add_argument("--lowpass-share", type=float, default=0.0, help="share of iterations in a first 8 Hz low-pass stage")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default="runs/bench_refine", help="scratch folder (replaced)")
    args = parser.parse_args()
    comp, out = Path(args.competition), Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    name = predict_runs([args.run], comp / "test", out / "pred", device=args.device, progress=False)
    pred_path = next(p for k, p in name.items() if "__" not in k)
    settings = RefineSettings(lowpass_share=args.lowpass_share)
    t0 = time.perf_counter()
    refine_file(
        pred_path,
        out / "pred" / "ids.txt",
        comp / "test",
        out / "refined",
        samples=args.samples,
        iters=args.iters,
        device=args.device,
        batch_size=args.batch_size,
        settings=settings,
        progress=False,
    )
    wall = time.perf_counter() - t0
    ids = read_ids(out / "pred" / "ids.txt")
    labels_index = pd.read_csv(comp / "test_ids.csv", dtype={"id": str}).set_index("id")
    labels = np.load(comp / "test_labels.npy")
    position = {sample_id: i for i, sample_id in enumerate(labels_index.index)}
    residuals = pd.read_csv(out / "refined" / "residuals.csv", dtype={"sample_id": str})
    rows = [ids.index(s) for s in residuals["sample_id"]]
    truth = labels[[position[s] for s in residuals["sample_id"]]]
    before = sample_mae(np.load(pred_path)[rows].astype(np.float32), truth)
    after = sample_mae(np.load(out / "refined" / "refined.npy")[rows].astype(np.float32), truth)
    residuals["family"] = labels_index.loc[residuals["sample_id"], "family"].to_numpy()
    residuals["mae_before"], residuals["mae_after"] = before, after
    table = []
    for family, group in residuals.groupby("family"):
        table.append(
            (
                family,
                len(group),
                group["mae_before"].mean(),
                group["mae_after"].mean(),
                group["mae_after"].mean() / group["mae_before"].mean(),
            )
        )
    flat = residuals[residuals["family"].str.startswith("FlatVel")]
    if len(flat):
        table.append(
            (
                "**flat layers (FlatVel)**",
                len(flat),
                flat["mae_before"].mean(),
                flat["mae_after"].mean(),
                flat["mae_after"].mean() / flat["mae_before"].mean(),
            )
        )
    table.append(("**all refined**", len(residuals), before.mean(), after.mean(), after.mean() / before.mean()))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, device {args.device}")
    print(
        f"refined {len(residuals)} of {len(ids)} maps, {args.iters} iterations each, batches of {args.batch_size}: {wall:.0f} s wall"
    )
    print(markdown_table(["family", "maps", "MAE before", "MAE after", "after/before"], table, digits=[None, 0, 1, 1, 2]))
    iterations = residuals["iterations"].sum()
    print(
        f"relative misfit (median): {residuals['residual_before'].median():.3g} -> {residuals['residual_after'].median():.3g}; "
        f"accepted {int(residuals['accepted'].sum())}/{len(residuals)}; bases: {residuals['basis'].value_counts().to_dict()}"
    )
    print(
        f"seconds per sample-iteration: {residuals['seconds'].sum() / iterations:.3f} "
        f"(refinement only; whole command {wall / iterations:.3f})"
    )


if __name__ == "__main__":
    main()
