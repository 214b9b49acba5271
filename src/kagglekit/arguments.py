"""The argument vocabulary every command shares: `--device auto|cpu|cuda` and counts that must be positive.

(Run folders are positional, `--out` is always a folder, `--batch-size`, time limits in `--minutes`.)
"""

from __future__ import annotations

import argparse

from kagglekit.device import DEVICES


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 or less is an argument error, never "all")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_device_argument(parser: argparse.ArgumentParser, what: str = "run") -> None:
    """`--device {auto,cpu,cuda}`, default auto (resolve it with kagglekit.device.resolve_device)."""
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help=f"where to {what}: auto (the GPU when there is one), cpu or cuda"
    )
