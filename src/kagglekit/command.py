"""The house style of `kagglekit` sub-commands, shared by the CLI core, `kaggle/` and every task
(a leaf module: it imports nothing of kagglekit, so no command module imports `cli.py`)."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help (unless required, a flag, or already in the text)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and not action.required
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An argument error is one line (`prog: error: ...`, exit status 2), without the usage block;
    sub-command parsers are made of the root parser's class, so they inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def command(
    subparsers: argparse._SubParsersAction, name: str, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A sub-command parser in the house style (tasks add theirs with this)."""
    return subparsers.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)
