"""`kagglekit` command line: the core commands (train, models) and each registered task's own.

Thin by design: every command parses its arguments and calls one library function. Errors a
user can cause (kagglekit.errors.UserError and missing files) print one line; `--debug` shows
the traceback.
"""

from __future__ import annotations

import argparse
import sys

from kagglekit.arguments import positive_int
from kagglekit.command import HelpFormatter, Parser, command  # noqa: F401 (re-exported: tasks' command modules use it)


def _train(args) -> None:
    from kagglekit.engine.train import train

    run_dir = train(args.config, fold=args.fold, overrides=args.overrides, resume=args.resume, stop_after=args.stop_after)
    print(f"run folder: {run_dir}")


def _models(args) -> None:
    from kagglekit.engine.task import TASKS
    from kagglekit.models_info import model_rows
    from kagglekit.report import markdown_table

    names = [args.task] if args.task else TASKS.names()
    print(markdown_table(["task", "model", "parameters (M, default size)"], model_rows(names), digits=[None, None, 2]))


def _runs(args) -> None:
    from kagglekit.engine.experiments import experiment_rows, to_csv, to_markdown

    rows = experiment_rows(args.runs_dir, args.configs, per_fold=args.folds)
    print(to_csv(rows) if args.csv else to_markdown(rows), end="" if args.csv else "\n")


def _convert_checkpoint(args) -> None:
    from kagglekit.engine.checkpoint import convert_checkpoint

    for path in args.checkpoints:
        print(f"{path}: {'converted to plain data' if convert_checkpoint(path) else 'loads safely already, left as it is'}")


def build_parser() -> argparse.ArgumentParser:
    from kagglekit import __version__
    from kagglekit.engine.task import TASKS

    parser = Parser(prog="kagglekit", description="Kaggle competition workbench", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"kagglekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    train = command(commands, "train", "train one fold of a config", "Train CONFIG on one fold; dotted overrides may follow.")
    train.add_argument("config", help="YAML file, e.g. configs/fwi/tiny_unet.yaml")
    train.add_argument("--fold", type=int, default=0, help="validation fold; -1 trains on all folds and validates on the holdout")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last.pt")
    train.add_argument(
        "--stop-after", type=positive_int, default=None, metavar="EPOCH", help="pause after this epoch (continue with --resume)"
    )
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=3e-4 train.epochs=2")
    train.set_defaults(func=_train)

    models = command(commands, "models", "list the registered models of every task with their parameter counts")
    models.add_argument("--task", choices=TASKS.names(), default=None, help="only this task's models")
    models.set_defaults(func=_models)

    runs = command(commands, "runs", "the experiment table: one row per config of a runs folder (CV, epochs, overrides, LB)")
    runs.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR", help="folder of run folders (default: runs)")
    runs.add_argument("--configs", default="configs", help="where the config files are (overrides are shown against them)")
    runs.add_argument("--folds", action="store_true", help="one row per fold folder instead of per config")
    runs.add_argument("--csv", action="store_true", help="print CSV (all columns) instead of a markdown table")
    runs.set_defaults(func=_runs)

    convert = command(commands, "convert-checkpoint", "rewrite checkpoints from before safe loading as plain data (in place)")
    convert.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="best.pt / last.pt files")
    convert.set_defaults(func=_convert_checkpoint)

    from kagglekit.kaggle.commands import add_commands as add_kaggle_commands

    kaggle = command(commands, "kaggle", "stage code and weights, render kernels, validate, push, submit (kagglekit[kaggle])")
    add_kaggle_commands(kaggle.add_subparsers(dest="kaggle_command", title="commands", metavar="COMMAND", required=True))

    for name in TASKS.names():
        spec = TASKS.get(name)
        if spec.add_commands is not None:
            task_parser = command(commands, name, spec.help)
            spec.add_commands(task_parser.add_subparsers(dest="task_command", title="commands", metavar="COMMAND", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    from kagglekit.errors import UserError, one_line

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    if extra:  # dotted overrides may follow options: `train CFG --fold 0 train.lr=1e-3`
        if args.command != "train" or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        args.func(args)
    except (UserError, FileExistsError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
