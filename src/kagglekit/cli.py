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
    except (ConfigError, DataError, FileExistsError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
