"""`kagglekit fwi <command>`: argument parsing and one library call per command."""

from __future__ import annotations

import argparse
from pathlib import Path

from kagglekit.cli import command


def _convert(args) -> None:
    from kagglekit.fwi.data.convert import convert

    out = convert(args.src, args.out, shard_size=args.shard_size, n_folds=args.folds, holdout=args.holdout, seed=args.seed)
    print(f"converted {args.src} -> {out}")


def _folds(args) -> None:
    from kagglekit.fwi.data.convert import recompute_folds

    index = recompute_folds(args.converted, n_folds=args.folds, seed=args.seed, holdout=args.holdout)
    print(index.groupby(["family", "fold"]).size().unstack(fill_value=0).to_string())


def _simulate(args) -> None:
    from kagglekit.fwi.synthetic import make_competition

    out = make_competition(
        args.out, per_file=args.per_file, n_test=args.n_test, seed=args.seed, batch=args.batch, backend=args.backend
    )
    print(f"synthetic competition ready: {out}")


def _augment(args) -> None:
    from kagglekit.fwi.augment.augment import augment

    out = augment(
        args.converted,
        args.out,
        args.count,
        args.methods,
        seed=args.seed,
        device=args.device,
        shard_size=args.shard_size,
        batch=args.batch,
    )
    print(f"augmented rows ready: {out} (train on it with data.roots=[{args.converted},{out}])")


def _pseudo_label(args) -> None:
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
        device=args.device,
    )
    print(round_table(report))
    print(f"next round: kagglekit fwi pseudo-label {report['pseudo']['run']} --test-dir {args.test_dir} --out <new folder>")


def _predict(args) -> None:
    from kagglekit.fwi.predict import predict_runs

    written = predict_runs(
        args.runs,
        args.test_dir,
        args.out,
        tta_flip=not args.no_tta,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
    )
    for name, path in written.items():
        print(f"{name}: {path}")
    print(f"ids: {Path(args.out) / 'ids.txt'}")
    if args.misfit:
        from kagglekit.fwi.refine import misfit_files

        for path in misfit_files(written, Path(args.out) / "ids.txt", args.test_dir, device=args.device or "cpu"):
            print(f"misfit: {path}")


def _refine(args) -> None:
    from kagglekit.fwi.refine import refine_file

    out = refine_file(
        args.pred,
        args.ids,
        args.test_dir,
        args.out,
        samples=args.samples,
        budget_minutes=args.budget_minutes,
        iters=args.iters,
        device=args.device,
        batch_size=args.batch_size,
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

    print(ensemble_to_folder(args.oof, args.preds, args.method, args.out))


def _submit(args) -> None:
    from kagglekit.fwi.submission import submit

    result = submit(args.pred, args.ids, args.sample_submission, args.out)
    print(
        f"wrote {result['path']} in {result['write_s']:.1f} s; validated in {result['validate_s']:.1f} s "
        "(columns, ids, duplicates, finite values in 1500-4500)"
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


def add_commands(commands: argparse._SubParsersAction) -> None:
    c = command(commands, "convert", "stream a training tree into fp16 memmaps + index.csv")
    c.add_argument("src", help="train_samples/ tree or OpenFWI release folder (float32 or float16)")
    c.add_argument("out", help="output folder (built in .OUT.partial/, renamed when complete)")
    c.add_argument("--shard-size", type=int, default=None, help="samples per seismic shard (default: one file)")
    c.add_argument("--folds", type=int, default=5, help="number of cross-validation folds")
    c.add_argument("--holdout", type=float, default=0.0, help="fraction of every family kept as fold -1")
    c.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    c.set_defaults(func=_convert)

    f = command(commands, "folds", "reassign the folds of a converted folder (the only command that changes them)")
    f.add_argument("converted", help="folder written by `fwi convert`")
    f.add_argument("--folds", type=int, default=5, help="number of cross-validation folds")
    f.add_argument("--holdout", type=float, default=0.0, help="fraction of every family kept as fold -1")
    f.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    f.set_defaults(func=_folds)

    s = command(commands, "simulate", "write a synthetic competition (Kaggle layout) simulated with deepwave")
    s.add_argument("out", help="output folder")
    s.add_argument("--per-file", type=int, default=50, help="samples per training file (2 files per family)")
    s.add_argument("--n-test", type=int, default=100, help="number of test samples")
    s.add_argument("--seed", type=int, default=0, help="seed of the velocity maps and test ids")
    s.add_argument("--batch", type=int, default=32, help="velocity models per simulator call")
    s.add_argument(
        "--backend", choices=["deepwave", "openfwi"], default="deepwave", help="simulator: deepwave, or the exact OpenFWI scheme"
    )
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
    a.add_argument("--count", type=int, required=True, help="rows to write")
    a.add_argument("--methods", default="blend,affine,flip6,mixup,family", help="comma-separated methods")
    a.add_argument("--seed", type=int, default=0, help="seed of the maps (shard k uses [seed, k])")
    a.add_argument("--device", default="cpu", help="simulate on cpu or cuda")
    a.add_argument("--shard-size", type=int, default=256, help="rows per seismic shard (the unit of resumption)")
    a.add_argument("--batch", type=int, default=32, help="maps per simulator call")
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
    pl.add_argument("--test-dir", "--test", dest="test_dir", required=True, help="folder of <id>.npy test seismic")
    pl.add_argument("--out", required=True, help="round folder (predictions, pseudo/, round.json, round.md)")
    pl.add_argument("--minutes", type=float, default=3.0, help="fine-tuning budget (train.max_minutes)")
    pl.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs (the budget usually ends it first)")
    pl.add_argument("--lr-scale", type=float, default=0.3, help="fine-tuning learning rate = the run's lr x this")
    pl.add_argument("--refine-minutes", type=float, default=0.0, help="refine the predicted maps first (0: off)")
    pl.add_argument("--pseudo-repeat", type=int, default=1, help="times the pseudo pairs appear per fine-tuning epoch")
    pl.add_argument("--name", default=None, help="config name of the fine-tuned run (default: <config>_pl<k>)")
    pl.add_argument("--control", action="store_true", help="also fine-tune without the pairs (same budget) for comparison")
    pl.add_argument("--labels", default=None, help="hidden test maps (N, 70, 70), e.g. data/synthetic/test_labels.npy")
    pl.add_argument("--label-ids", default=None, help="id[,family] per row of --labels, e.g. data/synthetic/test_ids.csv")
    pl.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    pl.set_defaults(func=_pseudo_label)

    p = command(commands, "predict", "predict a test folder from run folders (best EMA weights, flip TTA)")
    p.add_argument("runs", nargs="+", help="run folders, e.g. runs/hgnet_b2/fold0 runs/hgnet_b2/fold1")
    p.add_argument("--test-dir", required=True, help="folder of <id>.npy test files")
    p.add_argument("--out", required=True, help="prediction folder (<config>__<fold>.npy, <config>.npy, ids.txt)")
    p.add_argument("--no-tta", action="store_true", help="skip the flip TTA pass")
    p.add_argument("--batch-size", type=int, default=32, help="test samples per forward pass")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers reading test files")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
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
        "Refine PRED against the test seismic; writes OUT/refined.npy, ids.txt, residuals.csv. A map is replaced\n"
        "only where the refined one fits the seismic better. Rerun into the same --out to continue.",
    )
    r.add_argument("pred", help="(N, 70, 70) .npy predictions, e.g. predictions/small_unet.npy")
    r.add_argument("--ids", required=True, help="ids file of PRED (ids.txt, one id per line)")
    r.add_argument("--test-dir", "--test", dest="test_dir", required=True, help="folder of <id>.npy test seismic")
    r.add_argument("--out", required=True, help="output folder (refined.npy, ids.txt, residuals.csv, start_misfit.csv)")
    limit = r.add_mutually_exclusive_group()
    limit.add_argument("--samples", type=int, default=None, help="refine this many maps, the worst-fitting first (default: all)")
    limit.add_argument("--budget-minutes", type=float, default=None, help="stop starting new batches after this wall time")
    r.add_argument("--iters", type=int, default=40, help="optimiser iterations per map")
    r.add_argument("--device", default="cpu", help="cpu or cuda")
    r.add_argument("--batch-size", type=int, default=8, help="maps optimised together")
    r.set_defaults(func=_refine)

    v = command(commands, "cv", "local CV from out-of-fold predictions (table, CSV, PNGs)")
    v.add_argument("runs", nargs="+", help="run folders (one fold) or config folders (runs/<config>: folds merged)")
    v.add_argument("--out", default="runs/cv", help="where cv.csv and the PNGs go")
    v.add_argument("--worst", type=int, default=6, help="worst samples to draw per run")
    v.set_defaults(func=_cv)

    e = command(commands, "ensemble", "blend models by OOF: mean, median or fitted weights")
    e.add_argument("--oof", nargs="+", required=True, help="run or config folders with OOF predictions")
    e.add_argument(
        "--preds",
        nargs="*",
        default=[],
        help="test prediction files (.npy with ids.txt beside), one per --oof member, same order",
    )
    e.add_argument("--method", choices=["mean", "median", "weights"], default="weights", help="how members are combined")
    e.add_argument("--out", default="predictions/ensemble", help="folder for ensemble.json (+ ensemble.npy, ids.txt)")
    e.set_defaults(func=_ensemble)

    b = command(commands, "submit", "write and validate the Kaggle submission CSV")
    b.add_argument("pred", help="(N, 70, 70) .npy predictions")
    b.add_argument("--ids", required=True, help="ids file of the predictions (ids.txt: one id per line, array order)")
    b.add_argument("--sample-submission", required=True, help="the competition's sample_submission.csv (row order)")
    b.add_argument("--out", required=True, help="CSV to write, e.g. submissions/hgnet_b2.csv")
    b.set_defaults(func=_submit)

    c2 = command(commands, "validate", "check a submission CSV against the sample submission")
    c2.add_argument("csv", help="submission CSV")
    c2.add_argument("--sample-submission", required=True, help="the competition's sample_submission.csv")
    c2.set_defaults(func=_validate)

    sc = command(commands, "score", "Kaggle MAE of a submission against known test velocities")
    sc.add_argument("csv", help="submission CSV")
    sc.add_argument("--labels", required=True, help="test_labels.npy (N, 70, 70)")
    sc.add_argument("--label-ids", required=True, help="test_ids.csv: id[,family] per row of --labels")
    sc.set_defaults(func=_score)
