"""One vocabulary across the `fwi` and `vision` commands (read off the real parsers)."""

import argparse

import pytest

from kagglekit.cli import build_parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _commands() -> dict[str, argparse.ArgumentParser]:
    top = _subcommands(build_parser())
    return {f"{task} {name}": sub for task in ("fwi", "vision") for name, sub in _subcommands(top[task]).items()}


COMMANDS = _commands()


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def test_the_local_csv_writer_is_write_csv_not_submit():
    assert "fwi write-csv" in COMMANDS and "fwi submit" not in COMMANDS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_one_spelling_per_option(name):
    options = _options(COMMANDS[name])
    assert not {"--test", "--ids", "--oof", "--batch", "--budget-minutes", "--budget", "--seconds"} & set(options), name
    if "--device" in options:
        device = options["--device"]
        assert tuple(device.choices) == ("auto", "cpu", "cuda") and device.default == "auto", name
    if "--out" in options:
        assert "folder" in (options["--out"].help or ""), f"{name}: --out must be a folder"


@pytest.mark.parametrize(
    "name, positional",
    [
        ("fwi predict", "runs"),
        ("fwi cv", "runs"),
        ("fwi ensemble", "runs"),
        ("fwi pseudo-label", "run"),
        ("vision predict", "runs"),
    ],
)
def test_run_folders_are_positional(name, positional):
    assert any(a.dest == positional and not a.option_strings for a in COMMANDS[name]._actions)


@pytest.mark.parametrize("name", ["fwi predict", "fwi augment", "fwi refine", "fwi pseudo-label", "vision predict"])
def test_device_everywhere_a_model_or_simulator_runs(name):
    assert "--device" in _options(COMMANDS[name])
