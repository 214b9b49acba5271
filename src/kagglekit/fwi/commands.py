"""`kagglekit fwi <command>`: argument parsing and one library call per command.

One vocabulary across commands: run folders are positional, `--out` is always a folder,
`--batch-size`, `--device auto|cpu|cuda` (default auto), time limits in `--minutes`, counts that
must be positive are refused at parse time, and a prediction's ids are read from `ids.txt` beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kagglekit.arguments import (
    add_device_argument,
    fold_count,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from kagglekit.command import command


def _convert(args) -> None:
    from kagglekit.fwi.data.convert import convert

    out = convert(args.src, args.out, shard_size=args.shard_size, n_folds=args.folds, holdout=args.holdout, seed=args.seed)
    print(f"converted {args.src} -> {out}")


def _folds(args) -> None:
    from kagglekit.fwi.data.convert import recompute_folds

    index = recompute_folds(args.converted, n_folds=args.folds, seed=args.seed, holdout=args.holdout)
    print(index.groupby(["family", "fold"]).size().unstack(fill_value=0).to_string())


def _simulate(args) -> None:
    from kagglekit.device import resolve_device
    from kagglekit.fwi.synthetic import make_competition
    from kagglekit.parallel import default_workers

    device = resolve_device(args.device)
    out = make_competition(
        args.out,
        per_file=args.per_file,
        n_test=args.n_test,
        seed=args.seed,
        batch=args.batch_size,
        backend=args.backend,
        device=device,
        workers=args.workers or default_workers(device),
    )
    print(f"synthetic competition ready: {out}")


def _augment(args) -> None:
    from kagglekit.device import resolve_device
    from kagglekit.fwi.augment.augment import augment
    from kagglekit.parallel import default_workers

    device = resolve_device(args.device)
    out = augment(
        args.converted,
        args.out,
        args.count,
        args.methods,
        seed=args.seed,
        device=device,
        shard_size=args.shard_size,
        batch=args.batch_size,
        workers=args.workers or default_workers(device),
    )
    print(f"augmented rows ready: {out} (train on it with data.roots=[{args.converted},{out}])")


def _pseudo_label(args) -> None:
    from kagglekit.device import resolve_device
    from kagglekit.fwi.pseudo import pseudo_label_round, round_table

    report = pseudo_label_round(
        args.run,
        args.test_dir,
        args.out,
        refine_minutes=args.refine_minutes,
        finetune_minutes=args.minutes,
        epochs=args.epochs,
        lr_scale=args.lr_scale,
        control=args.control,
        pseudo_repeat=args.pseudo_repeat,
        name=args.name,
        labels=args.labels,
        label_ids=args.label_ids,
        device=resolve_device(args.device),
    )
    print(round_table(report))
    print(f"next round: kagglekit fwi pseudo-label {report['pseudo']['run']} --test-dir {args.test_dir} --out <new folder>")


def _predict(args) -> None:
    from kagglekit.device import resolve_device
    from kagglekit.fwi.predict import predict_runs

    device = resolve_device(args.device)
    written = predict_runs(
        args.runs,
        args.test_dir,
        args.out,
        tta_flip=not args.no_tta,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=device,
    )
    for name, path in written.items():
        print(f"{name}: {path}")
    print(f"ids: {Path(args.out) / 'ids.txt'}; run folders: {Path(args.out) / 'runs.json'}")
    if args.misfit:
        from kagglekit.fwi.refine import misfit_files

        for path in misfit_files(written, args.test_dir, device=device):
            print(f"misfit: {path}")


def _refine_settings(args):
    """RefineSettings from `fwi refine`'s options (defaults: RefineSettings' own)."""
    from kagglekit.errors import UserError
    from kagglekit.fwi.physics.refine import RefineSettings

    stage_iters = []
    for item in filter(None, (args.stage_iters or "").split(",")):
        name, _, count = item.partition("=")
        if name not in ("row", "layer", "dct", "pixel", "merge") or not count.isdigit():
            raise UserError(f"--stage-iters: expected NAME=COUNT items with NAME in row, layer, dct, pixel, merge; got '{item}'")
        stage_iters.append((name, int(count)))
    if not 1 <= args.time_window <= 1000:
        raise UserError(f"--time-window: expected 1-1000 time samples, got {args.time_window}")
    return RefineSettings(
        method=args.method,
        operator=args.operator,
        n_time=args.time_window,
        late_weight=args.late_weight,
        tol_grad=args.tol_grad,
        tol_change=args.tol_change,
        refresh_every=args.refresh_every,
        stage_iters=tuple(stage_iters),
    )


def _refine(args) -> None:
    from kagglekit.device import resolve_device
    from kagglekit.fwi.refine import refine_sharded

    out = refine_sharded(
        args.pred,
        args.test_dir,
        args.out,
        samples=args.samples,
        minutes=args.minutes,
        iters=args.iters,
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        workers=args.workers,
        settings=_refine_settings(args),
    )
    print(f"refined predictions: {out / 'refined.npy'} (ids {out / 'ids.txt'}, per-sample fit {out / 'residuals.csv'})")


def _cv(args) -> None:
    from kagglekit.fwi.cv import cv_report

    table, files = cv_report(args.runs, args.out, worst=args.worst)
    print(table)
    for path in files.values():
        print(f"wrote {path}")


def _ensemble(args) -> None:
    from kagglekit.fwi.ensemble import ensemble_to_folder

    print(ensemble_to_folder(args.runs, args.preds, args.method, args.out))


def _write_csv(args) -> None:
    from kagglekit.fwi.predictions import Predictions
    from kagglekit.fwi.submission import sources_path, write_and_validate

    pred = Predictions.read(args.pred)
    csv = Path(args.out) / f"{args.name or Path(args.pred).stem}.csv"
    result = write_and_validate(pred, args.sample_submission, csv)
    print(result["range"].summary())
    print(
        f"wrote {result['path']} in {result['write_s']:.1f} s; validated in {result['validate_s']:.1f} s "
        f"(columns, ids, duplicates, finite values in 1500-4500); sources: {sources_path(result['path'])}"
    )


def _validate(args) -> None:
    from kagglekit.errors import UserError
    from kagglekit.fwi.submission import validate_submission

    problems = validate_submission(args.csv, args.sample_submission)
    if problems:
        raise UserError(f"{args.csv} is invalid: " + "; ".join(map(str, problems)))
    print(f"{args.csv}: valid")


def _score(args) -> None:
    from kagglekit.fwi.submission import score_table

    print(score_table(args.csv, args.labels, args.label_ids))


def _add_workers_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="processes on this machine (default: one single-threaded worker per core, one per GPU on cuda); "
        "under torchrun each rank is one worker and takes its share of the shards",
    )


def add_commands(commands: argparse._SubParsersAction) -> None:
    c = command(commands, "convert", "stream a training tree into fp16 memmaps + index.csv")
    c.add_argument("src", help="train_samples/ tree or OpenFWI release folder (float32 or float16)")
    c.add_argument("out", help="output folder (built in .OUT.partial/, renamed when complete)")
    c.add_argument("--shard-size", type=positive_int, default=None, help="samples per seismic shard (default: one file)")
    c.add_argument("--folds", type=fold_count, default=5, help="number of cross-validation folds")
    c.add_argument("--holdout", type=fraction, default=0.0, help="fraction of every family kept as fold -1")
    c.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    c.set_defaults(func=_convert)

    f = command(commands, "folds", "reassign the folds of a converted folder (the only command that changes them)")
    f.add_argument("converted", help="folder written by `fwi convert`")
    f.add_argument("--folds", type=fold_count, default=5, help="number of cross-validation folds")
    f.add_argument("--holdout", type=fraction, default=0.0, help="fraction of every family kept as fold -1")
    f.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    f.set_defaults(func=_folds)

    s = command(commands, "simulate", "write a synthetic competition (Kaggle layout) simulated with deepwave")
    s.add_argument("out", help="output folder")
    s.add_argument("--per-file", type=positive_int, default=50, help="samples per training file (2 files per family)")
    s.add_argument("--n-test", type=int, default=100, help="number of test samples (0: none)")
    s.add_argument("--seed", type=int, default=0, help="seed of the velocity maps and test ids")
    s.add_argument("--batch-size", type=positive_int, default=32, help="velocity models per simulator call")
    s.add_argument(
        "--backend", choices=["deepwave", "openfwi"], default="deepwave", help="simulator: deepwave, or the exact OpenFWI scheme"
    )
    add_device_argument(s, "simulate")
    _add_workers_argument(s)
    s.set_defaults(func=_simulate)

    a = command(
        commands,
        "augment",
        "new velocity maps from a converted folder, simulated, as a converted folder (resumable)",
        "Methods: blend (a v1 + (1-a) v2, a ~ U(0.3, 0.7)), mixup (a ~ Beta(0.4, 0.4)), affine (crop-and-resize,\n"
        "small rotation), family (fresh generator maps), flip6 (every map also written mirrored, exact, from\n"
        "one 6-shot simulation; alone: mirrors of the source maps). Parents come from one cross-validation\n"
        "fold; a generated row never validates and trains only folds that do not validate its parents.\n"
        "Rerun the same command to resume an interrupted run; a finished one is a no-op.",
    )
    a.add_argument("converted", help="folder written by `fwi convert` (the parents)")
    a.add_argument("--out", required=True, help="output folder (same format as `fwi convert`, plus an origin column)")
    a.add_argument("--count", type=positive_int, required=True, help="rows to write")
    a.add_argument("--methods", default="blend,affine,flip6,mixup,family", help="comma-separated methods")
    a.add_argument("--seed", type=int, default=0, help="seed of the maps (shard k uses [seed, k])")
    add_device_argument(a, "simulate")
    a.add_argument("--shard-size", type=positive_int, default=256, help="rows per seismic shard (the unit of resumption)")
    a.add_argument("--batch-size", type=positive_int, default=32, help="maps per simulator call")
    _add_workers_argument(a)
    a.set_defaults(func=_augment)

    pl = command(
        commands,
        "pseudo-label",
        "one pseudo-label round: predict the test set, simulate the maps, fine-tune on train + pseudo pairs",
        "Predict TEST_DIR with RUN, optionally refine the maps (--refine-minutes), simulate them and write the\n"
        "(seismic, map) pairs to OUT/pseudo (origin pseudo:<id>), fine-tune RUN on its folders + the pairs as\n"
        "<config>_pl<k>, predict again. Reports the test misfit per stage, and the test MAE with --labels.\n"
        "Steps already done in OUT are skipped: rerun to resume.",
    )
    pl.add_argument("run", help="run folder, e.g. runs/small_unet/fold0")
    pl.add_argument("--test-dir", required=True, help="folder of <id>.npy test seismic")
    pl.add_argument("--out", required=True, help="round folder (predictions, pseudo/, round.json, round.md)")
    pl.add_argument("--minutes", type=positive_float, default=3.0, help="fine-tuning budget in minutes (train.max_minutes)")
    pl.add_argument("--epochs", type=positive_int, default=20, help="fine-tuning epochs (the budget usually ends it first)")
    pl.add_argument("--lr-scale", type=positive_float, default=0.3, help="fine-tuning learning rate = the run's lr x this")
    pl.add_argument(
        "--refine-minutes", type=non_negative_float, default=0.0, help="refine the predicted maps first (minutes; 0: off)"
    )
    pl.add_argument("--pseudo-repeat", type=positive_int, default=1, help="times the pseudo pairs appear per fine-tuning epoch")
    pl.add_argument("--name", default=None, help="config name of the fine-tuned run (default: <config>_pl<k>)")
    pl.add_argument("--control", action="store_true", help="also fine-tune without the pairs (same budget) for comparison")
    pl.add_argument("--labels", default=None, help="hidden test maps (N, 70, 70), e.g. data/synthetic/test_labels.npy")
    pl.add_argument("--label-ids", default=None, help="id[,family] per row of --labels, e.g. data/synthetic/test_ids.csv")
    add_device_argument(pl, "predict, simulate and fine-tune")
    pl.set_defaults(func=_pseudo_label)

    p = command(commands, "predict", "predict a test folder from run folders (best EMA weights, flip TTA)")
    p.add_argument("runs", nargs="+", help="run folders, e.g. runs/hgnet_b2/fold0 runs/hgnet_b2/fold1")
    p.add_argument("--test-dir", required=True, help="folder of <id>.npy test files")
    p.add_argument("--out", required=True, help="prediction folder (<config>__<fold>.npy, <config>.npy, ids.txt, runs.json)")
    p.add_argument("--no-tta", action="store_true", help="skip the flip TTA pass")
    p.add_argument("--batch-size", type=positive_int, default=32, help="test samples per forward pass")
    p.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader workers reading test files")
    add_device_argument(p, "predict")
    p.add_argument(
        "--misfit",
        action="store_true",
        help="also write <config>.misfit.csv: each config mean's relative seismic misfit per sample (a confidence)",
    )
    p.set_defaults(func=_predict)

    r = command(
        commands,
        "refine",
        "fit predicted maps to their own test seismic (worst-fitting first; resumable)",
        "Refine PRED (ids.txt beside it) against the test seismic; writes OUT/refined.npy, ids.txt, residuals.csv.\n"
        "A map is replaced only where the refined one fits the seismic better. Rerun into the same --out to continue.",
    )
    r.add_argument("pred", help="(N, 70, 70) .npy predictions with ids.txt beside them, e.g. predictions/small_unet.npy")
    r.add_argument("--test-dir", required=True, help="folder of <id>.npy test seismic")
    r.add_argument("--out", required=True, help="output folder (refined.npy, ids.txt, residuals.csv, start_misfit.csv)")
    r.add_argument(
        "--samples", type=positive_int, default=None, help="refine this many maps, the worst-fitting first (default: all)"
    )
    r.add_argument("--minutes", type=positive_float, default=None, help="wall-time budget of the whole command (default: none)")
    r.add_argument("--iters", type=positive_int, default=40, help="optimiser iterations per map")
    add_device_argument(r, "refine")
    r.add_argument("--batch-size", type=positive_int, default=8, help="maps optimised together")
    r.add_argument(
        "--method",
        choices=("staged", "basis"),
        default="basis",
        help="basis: rows for flat maps, smooth grid then pixels otherwise (the measured default); staged: stages per kind of map",
    )
    r.add_argument(
        "--operator",
        choices=("deepwave", "corrected", "openfwi"),
        default="corrected",
        help="staged method's forward model: deepwave; deepwave + the exact scheme's defect, refreshed; the exact OpenFWI scheme",
    )
    r.add_argument("--time-window", type=positive_int, default=999, help="time samples fitted (the released last one is off)")
    r.add_argument(
        "--late-weight",
        type=non_negative_float,
        default=0.0,
        help="residual weight rises linearly to 1 + this at the last sample",
    )
    r.add_argument(
        "--stage-iters",
        default="",
        help="iterations per stage, e.g. row=60,layer=20,dct=20,pixel=80,merge=20 (else shares of --iters)",
    )
    r.add_argument(
        "--tol-grad", type=non_negative_float, default=1e-12, help="a map stops when its max |gradient| falls below this"
    )
    r.add_argument(
        "--tol-change", type=non_negative_float, default=1e-10, help="... or its objective changes by less than this share"
    )
    r.add_argument("--refresh-every", type=positive_int, default=10, help="corrected: iterations between defect refreshes")
    r.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes on this machine, each refining its share of the maps (one per core or GPU); "
        "under torchrun each rank is one",
    )
    r.set_defaults(func=_refine)

    v = command(commands, "cv", "local CV from out-of-fold predictions (table, CSV, PNGs)")
    v.add_argument("runs", nargs="+", help="run folders (one fold) or config folders (runs/<config>: folds merged)")
    v.add_argument("--out", default="runs/cv", help="folder for cv.csv and the PNGs")
    v.add_argument("--worst", type=non_negative_int, default=6, help="worst samples to draw per run")
    v.set_defaults(func=_cv)

    e = command(commands, "ensemble", "blend models by OOF: mean, median or fitted weights")
    e.add_argument("runs", nargs="+", help="run or config folders with OOF predictions (the members)")
    e.add_argument(
        "--preds",
        nargs="*",
        default=[],
        help="test prediction files (.npy with ids.txt beside), one per member, same order",
    )
    e.add_argument("--method", choices=["mean", "median", "weights"], default="weights", help="how members are combined")
    e.add_argument("--out", default="predictions/ensemble", help="folder for ensemble.json (+ ensemble.npy, ids.txt, runs.json)")
    e.set_defaults(func=_ensemble)

    w = command(
        commands,
        "write-csv",
        "write and validate the Kaggle submission CSV (locally; `kaggle submit` uploads it)",
        "Write PRED (ids.txt beside it) as OUT/NAME.csv in the sample submission's row order, validate it, and\n"
        "list its run folders in OUT/NAME.csv.sources.json. Values are checked before they are clipped to\n"
        "1500-4500 m/s: the share clipped is reported, and a file with more than 1% outside (e.g. km/s) is refused.",
    )
    w.add_argument("pred", help="(N, 70, 70) .npy predictions with ids.txt beside them")
    w.add_argument("--sample-submission", required=True, help="the competition's sample_submission.csv (row order)")
    w.add_argument("--out", default="submissions", help="folder for the CSV")
    w.add_argument("--name", default=None, help="CSV file name without .csv (default: the prediction file's name)")
    w.set_defaults(func=_write_csv)

    c2 = command(commands, "validate", "check a submission CSV against the sample submission")
    c2.add_argument("csv", help="submission CSV")
    c2.add_argument("--sample-submission", required=True, help="the competition's sample_submission.csv")
    c2.set_defaults(func=_validate)

    sc = command(commands, "score", "Kaggle MAE of a submission against known test velocities")
    sc.add_argument("csv", help="submission CSV")
    sc.add_argument("--labels", required=True, help="test_labels.npy (N, 70, 70)")
    sc.add_argument("--label-ids", required=True, help="test_ids.csv: id[,family] per row of --labels")
    sc.set_defaults(func=_score)
