"""`kagglekit` command line: the core commands (train, models) and each registered task's own.

Thin by design: every command parses its arguments and calls one library function. Errors a
user can cause (kagglekit.errors.UserError and missing files) print one line; `--debug` shows
the traceback.
"""

from __future__ import annotations

import argparse
import sys


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help (unless required, a flag, or already in the text)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and not action.required
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def command(
    subparsers: argparse._SubParsersAction, name: str, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A sub-command parser in the house style (tasks add theirs with this)."""
    return subparsers.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)


def _train(args) -> None:
    from kagglekit.config import load_config
    from kagglekit.engine.fit import fit

    cfg = load_config(args.config, args.overrides)
    run_dir = fit(cfg, fold=args.fold, resume=args.resume, stop_after=args.stop_after)
    print(f"run folder: {run_dir}")


def _models(args) -> None:
    from kagglekit.engine.task import TASKS
    from kagglekit.models_info import model_rows
    from kagglekit.report import markdown_table

    names = [args.task] if args.task else TASKS.names()
    print(markdown_table(["task", "model", "parameters (M, default size)"], model_rows(names), digits=[None, None, 2]))


def build_parser() -> argparse.ArgumentParser:
    from kagglekit import __version__
    from kagglekit.engine.task import TASKS

    parser = argparse.ArgumentParser(prog="kagglekit", description="Kaggle competition workbench", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"kagglekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    train = command(commands, "train", "train one fold of a config", "Train CONFIG on one fold; dotted overrides may follow.")
    train.add_argument("config", help="YAML file, e.g. configs/fwi/tiny_unet.yaml")
    train.add_argument("--fold", type=int, default=0, help="validation fold; -1 trains on all folds and validates on the holdout")
    train.add_argument("--resume", action="store_true", help="continue from the run folder's last.pt")
    train.add_argument(
        "--stop-after", type=int, default=None, metavar="EPOCH", help="pause after this epoch (continue with --resume)"
    )
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=3e-4 train.epochs=2")
    train.set_defaults(func=_train)

    models = command(commands, "models", "list the registered models of every task with their parameter counts")
    models.add_argument("--task", choices=TASKS.names(), default=None, help="only this task's models")
    models.set_defaults(func=_models)

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
