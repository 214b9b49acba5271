"""docs/cli.md, generated from the argparse parsers: every command's `--help`, in one file.

    .venv/bin/python -m kagglekit.clidoc --write docs/cli.md   # regenerate
    .venv/bin/python -m kagglekit.clidoc --check docs/cli.md   # exit 1 when the file is stale

Run it in a fresh interpreter (as these commands do): a task registered at run time would
otherwise appear in the output.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import sys
from pathlib import Path

WIDTH = 100  # fixed, so the text does not depend on the terminal
REGENERATE = ".venv/bin/python -m kagglekit.clidoc --write docs/cli.md"


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each sub-command, in the order `--help` lists them."""
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            rows += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return rows


def _help(parser: argparse.ArgumentParser) -> str:
    formatter_class = parser.formatter_class
    parser.formatter_class = functools.partial(formatter_class, width=WIDTH)
    try:
        return parser.format_help().rstrip()
    finally:
        parser.formatter_class = formatter_class


def _walk(parser: argparse.ArgumentParser, path: list[str]) -> list[tuple[list[str], str, argparse.ArgumentParser]]:
    out = []
    for name, summary, sub in _commands(parser):
        out.append(([*path, name], summary, sub))
        out += _walk(sub, [*path, name])
    return out


def render() -> str:
    """The whole of docs/cli.md."""
    from kagglekit.cli import build_parser

    parser = build_parser()
    commands = _walk(parser, [])
    lines = [
        "# Command reference",
        "",
        f"Generated from the argparse parsers by `{REGENERATE}`; do not edit by hand",
        "(`tests/test_docs.py` fails when this file is stale). Every command prints the same text with `--help`.",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for path, summary, _ in commands:
        name = " ".join(path)
        lines.append(f"| [`kagglekit {name}`](#{'kagglekit-' + '-'.join(path)}) | {summary.replace('|', '/')} |")
    lines += ["", "## kagglekit", "", "```text", _help(parser), "```"]
    for path, _, sub in commands:
        lines += ["", f"## kagglekit {' '.join(path)}", "", "```text", _help(sub), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kagglekit.clidoc", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="PATH", help="write the reference to PATH")
    group.add_argument("--check", metavar="PATH", help="exit 1 when PATH differs from what --write would write")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        from kagglekit.io import atomic_write_text

        atomic_write_text(Path(args.write), text)
        return 0
    path = Path(args.check)
    old = path.read_text() if path.is_file() else ""
    if old != text:
        diff = difflib.unified_diff(old.splitlines(), text.splitlines(), str(path), "the parsers", lineterm="", n=1)
        print(f"{path} is stale (the CLI changed); regenerate it with: {REGENERATE}", file=sys.stderr)
        print("\n".join(list(diff)[:40]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
