"""`kagglekit` command line: thin wrappers around library functions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _fwi_convert(args) -> None:
    from kagglekit.fwi.data.convert import convert

    out = convert(args.src, args.out, shard_size=args.shard_size, n_folds=args.folds, holdout=args.holdout, seed=args.seed)
    print(f"converted {args.src} -> {out}")


def _fwi_folds(args) -> None:
    from kagglekit.fwi.data.convert import recompute_folds

    index = recompute_folds(args.out, n_folds=args.folds, seed=args.seed, holdout=args.holdout)
    print(index.groupby(["family", "fold"]).size().unstack(fill_value=0).to_string())


def _fwi_simulate(args) -> None:
    from kagglekit.fwi.synthetic import make_competition

    out = make_competition(args.out, per_file=args.per_file, n_test=args.test, seed=args.seed, batch=args.batch)
    print(f"synthetic competition ready: {out}")


def _fwi_predict(args) -> None:
    from kagglekit.fwi.predict import predict_runs

    written = predict_runs(args.runs, args.test, args.out, tta_flip=not args.no_tta, batch_size=args.batch_size, num_workers=args.workers)
    for name, path in written.items():
        print(f"{name}: {path}")
    print(f"ids: {Path(args.out) / 'ids.txt'}")


def _fwi_cv(args) -> None:
    from kagglekit.fwi.cv import cv_report

    table, files = cv_report(args.runs, args.out, worst=args.worst)
    print(table)
    for path in files.values():
        print(f"wrote {path}")


def _fwi_ensemble(args) -> None:
    import json

    import numpy as np

    from kagglekit.fwi.ensemble import blend_oof, blend_test, format_table
    from kagglekit.io import atomic_save_npy, atomic_write_text

    if args.test and len(args.test) != len(args.oof):
        raise ValueError(f"--test needs one prediction per --oof member ({len(args.oof)}), got {len(args.test)}")
    blend, oofs = blend_oof(args.oof, args.method)
    print(f"method {args.method}, weights " + ", ".join(f"{o.name}={w:.3f}" for o, w in zip(oofs, blend.weights)))
    print("OOF MAE (rows used for fitting):\n" + format_table(blend.table))
    if blend.holdout_table:
        print("holdout MAE (fold -1, not used for fitting):\n" + format_table(blend.holdout_table))
    out = Path(args.out)
    report = {"method": args.method, "members": [o.name for o in oofs], "weights": [float(w) for w in blend.weights],
              "oof": blend.table, "holdout": blend.holdout_table}
    atomic_write_text(out / "ensemble.json", json.dumps(report, indent=1))
    if args.test:
        pred, ids = blend_test(args.test, blend)
        atomic_save_npy(out / "ensemble.npy", pred.astype(np.float16))
        atomic_write_text(out / "ids.txt", "\n".join(ids) + "\n")
        print(f"wrote {out / 'ensemble.npy'} and {out / 'ids.txt'}")


def _fwi_submit(args) -> None:
    import time

    import numpy as np

    from kagglekit.fwi.predict import read_ids
    from kagglekit.fwi.submission import validate_submission, write_submission

    t0 = time.perf_counter()
    path = write_submission(np.load(args.pred, mmap_mode="r"), read_ids(args.ids), args.sample_submission, args.out)
    print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    problems = validate_submission(path, args.sample_submission)
    if problems:
        raise ValueError("the written submission is invalid:\n" + "\n".join(map(str, problems)))
    print("validated: columns, ids, duplicates, finite values in 1500-4500")


def _fwi_validate(args) -> None:
    from kagglekit.fwi.submission import validate_submission

    problems = validate_submission(args.csv, args.sample_submission)
    if problems:
        raise ValueError(f"{args.csv} is invalid:\n" + "\n".join(f"  {p}" for p in problems))
    print(f"{args.csv}: valid")


def _fwi_score(args) -> None:
    import numpy as np
    import pandas as pd

    from kagglekit.fwi.submission import score_submission

    ids_frame = pd.read_csv(args.ids, dtype=str)
    metrics = score_submission(args.csv, np.load(args.labels), ids_frame["id"].tolist(),
                               ids_frame["family"].tolist() if "family" in ids_frame else None)
    print("| family | MAE (m/s) |\n|---|---:|")
    for key, value in metrics.items():
        print(f"| {key.split('/', 1)[-1] if '/' in key else 'all'} | {value:.2f} |")


def _vision_predict(args) -> None:
    from kagglekit.vision.predict import classification_metrics, plot_confusion, predict_runs, write_classification_csv

    probs, ids, labels, classes = predict_runs(args.runs, args.out)
    print(f"probabilities of {len(ids)} test images ({len(args.runs)} runs averaged): {Path(args.out) / 'probs.npy'}")
    if (labels >= 0).all():
        metrics = classification_metrics(probs, labels)
        print("\n".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
        plot_confusion(probs, labels, classes, Path(args.out) / "confusion.png")
        print(f"wrote {Path(args.out) / 'confusion.png'}")
    if args.csv:
        path = write_classification_csv(probs, ids, args.csv, classes if args.class_names else None, args.sample_submission)
        print(f"wrote {path}")


def _vision_export(args) -> None:
    import torch

    from kagglekit.vision.predict import classification_metrics, load_run, predict_probs
    from kagglekit.vision.quant import dequantize_into, export_quantized, quantized_layers

    task, model, temperature = load_run(args.run)
    if not quantized_layers(model):
        raise ValueError(f"{args.run}: not a QAT run (set model.qat_bits)")
    export = export_quantized(model)
    torch.save(export, args.out)
    fresh = task.build_model()
    dequantize_into(fresh, torch.load(args.out, weights_only=False)).eval()
    test = task.test_dataset()
    labels = task.source.labels[test.indices]
    metrics = classification_metrics(predict_probs(task, fresh, temperature, test), labels)
    print(f"integer export {args.out}: {export['size_bytes']} bytes vs {export['float32_bytes']} bytes float32 "
          f"({export['float32_bytes'] / export['size_bytes']:.1f}x smaller)")
    print(f"exported integer model, test accuracy {metrics['accuracy']:.4f}")


def _train(args) -> None:
    from kagglekit.config import load_config
    from kagglekit.engine.fit import fit

    cfg = load_config(args.config, args.overrides)
    run_dir = fit(cfg, fold=args.fold, resume=args.resume, stop_after=args.stop_after)
    print(f"run folder: {run_dir}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kagglekit", description="Kaggle competition workbench")
    tasks = parser.add_subparsers(dest="task", required=True)

    train = tasks.add_parser("train", help="train one fold of a config", description="Train CONFIG on one fold.")
    train.add_argument("config", help="YAML file, e.g. configs/fwi/tiny_unet.yaml")
    train.add_argument("--fold", type=int, default=0, help="validation fold; -1 trains on all folds but the holdout")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last.pt")
    train.add_argument("--stop-after", type=int, default=None, metavar="EPOCH", help="pause after this epoch (resume later)")
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=3e-4 train.epochs=2")
    train.set_defaults(func=_train)

    fwi = tasks.add_parser("fwi", help="waveform inversion data and physics", description="Waveform inversion commands.")
    cmds = fwi.add_subparsers(dest="command", required=True)

    c = cmds.add_parser("convert", help="stream a training tree into fp16 memmaps + index.csv")
    c.add_argument("src", help="train_samples/ tree or OpenFWI release folder")
    c.add_argument("out", help="output folder")
    c.add_argument("--shard-size", type=int, default=None, help="samples per seismic shard (default: one file)")
    c.add_argument("--folds", type=int, default=5)
    c.add_argument("--holdout", type=float, default=0.0, help="fraction per family kept as fold -1")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=_fwi_convert)

    f = cmds.add_parser("folds", help="recompute the fold column of a converted folder")
    f.add_argument("out", help="converted folder")
    f.add_argument("--folds", type=int, default=5)
    f.add_argument("--holdout", type=float, default=0.0)
    f.add_argument("--seed", type=int, default=0)
    f.set_defaults(func=_fwi_folds)

    s = cmds.add_parser("simulate", help="write a synthetic competition folder (Kaggle layout) with deepwave")
    s.add_argument("out")
    s.add_argument("--per-file", type=int, default=50, help="samples per training file (2 files per family)")
    s.add_argument("--test", type=int, default=100, help="number of test samples")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch", type=int, default=32, help="models per simulator call")
    s.set_defaults(func=_fwi_simulate)

    p = cmds.add_parser("predict", help="predict a test folder from run folders (best EMA weights, flip TTA)")
    p.add_argument("runs", nargs="+", help="run folders, e.g. runs/hgnet_b2/fold0 runs/hgnet_b2/fold1")
    p.add_argument("--test", required=True, help="folder of <id>.npy test files")
    p.add_argument("--out", required=True, help="prediction folder (<config>__<fold>.npy, <config>.npy, ids.txt)")
    p.add_argument("--no-tta", action="store_true", help="skip the flip TTA pass")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers reading test files")
    p.set_defaults(func=_fwi_predict)

    v = cmds.add_parser("cv", help="local CV from out-of-fold predictions (table, CSV, PNGs)")
    v.add_argument("runs", nargs="+", help="run folders (one fold) or config folders (runs/<config>: folds merged)")
    v.add_argument("--out", default="runs/cv", help="where cv.csv and the PNGs go")
    v.add_argument("--worst", type=int, default=6, help="worst samples to draw per run")
    v.set_defaults(func=_fwi_cv)

    e = cmds.add_parser("ensemble", help="blend models by OOF: mean, median or fitted weights")
    e.add_argument("--oof", nargs="+", required=True, help="run or config folders with OOF predictions")
    e.add_argument("--test", nargs="*", default=[], help="test predictions (.npy with ids.txt beside), same order as --oof")
    e.add_argument("--method", choices=["mean", "median", "weights"], default="weights")
    e.add_argument("--out", default="predictions/ensemble", help="ensemble.json (+ ensemble.npy, ids.txt)")
    e.set_defaults(func=_fwi_ensemble)

    b = cmds.add_parser("submit", help="write (and validate) the Kaggle submission CSV")
    b.add_argument("pred", help="(N, 70, 70) .npy predictions")
    b.add_argument("--ids", required=True, help="ids.txt written by predict/ensemble (one id per line, array order)")
    b.add_argument("--sample-submission", required=True)
    b.add_argument("--out", required=True, help="e.g. submissions/hgnet_b2.csv")
    b.set_defaults(func=_fwi_submit)

    c2 = cmds.add_parser("validate", help="check a submission CSV against the sample submission")
    c2.add_argument("csv")
    c2.add_argument("--sample-submission", required=True)
    c2.set_defaults(func=_fwi_validate)

    sc = cmds.add_parser("score", help="MAE of a submission against known test velocities")
    sc.add_argument("csv")
    sc.add_argument("--labels", required=True, help="test_labels.npy (N, 70, 70)")
    sc.add_argument("--ids", required=True, help="test_ids.csv (id[, family]) in the labels' order")
    sc.set_defaults(func=_fwi_score)

    vision = tasks.add_parser("vision", help="image classification", description="Image classification commands.")
    vcmds = vision.add_subparsers(dest="command", required=True)
    vp = vcmds.add_parser("predict", help="test-split probabilities of run folders (averaged), metrics, confusion PNG, CSV")
    vp.add_argument("runs", nargs="+", help="vision run folders, e.g. runs/fmnist_resnet9/fold0")
    vp.add_argument("--out", required=True, help="folder for probs.npy, ids.txt, confusion.png")
    vp.add_argument("--csv", default=None, help="also write an id,label submission CSV here")
    vp.add_argument("--sample-submission", default=None, help="take column names and row order from this CSV")
    vp.add_argument("--class-names", action="store_true", help="write class names instead of indices")
    vp.set_defaults(func=_vision_predict)
    ve = vcmds.add_parser("export", help="integer export of a QAT run: size and accuracy of the exported model")
    ve.add_argument("run")
    ve.add_argument("--out", required=True, help="e.g. runs/fmnist_qat4/fold0/int4.pt")
    ve.set_defaults(func=_vision_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    from kagglekit.config import ConfigError
    from kagglekit.fwi.data.readers import DataError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # dotted overrides may follow options: `train CFG --fold 0 train.lr=1e-3`
        if getattr(args, "task", None) != "train" or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        args.func(args)
    except (ConfigError, DataError, FileExistsError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
