"""The argument vocabulary every command shares: `--device auto|cpu|cuda` and counts that must be positive.

(Run folders are positional, `--out` is always a folder, `--batch-size`, time limits in `--minutes`.)
"""

from __future__ import annotations

import argparse
import math

from kagglekit.device import DEVICES


def _int_at_least(text: str, minimum: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 or less is an argument error, never "all")."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (e.g. DataLoader workers, where 0 reads in the main process)."""
    return _int_at_least(text, 0, "an integer >= 0")


def _finite(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (minutes, scales): checked before any work."""
    value = _finite(text, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (a budget where 0 means off)."""
    value = _finite(text, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value}")
    return value


def fold_count(text: str) -> int:
    """argparse type: a number of cross-validation folds (>= 2), checked before any work."""
    return _int_at_least(text, 2, "an integer >= 2")


def fraction(text: str) -> float:
    """argparse type: a fraction in [0, 1), checked before any work."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {value}")
    return value


def add_device_argument(parser: argparse.ArgumentParser, what: str = "run") -> None:
    """`--device {auto,cpu,cuda}`, default auto (resolve it with kagglekit.device.resolve_device)."""
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help=f"where to {what}: auto (the GPU when there is one), cpu or cuda"
    )
