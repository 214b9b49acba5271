"""The one base class of errors a user can cause (bad files, configs, arguments).

The command line prints such an error as one line (no traceback unless `--debug`); every
module's own error type derives from it, so callers can catch them all at once.
"""

from __future__ import annotations


class UserError(ValueError):
    """Input that is not what kagglekit expects; the message names the file and what was found."""


def one_line(err: BaseException) -> str:
    """The user-facing message of an error, also when it was re-raised from a DataLoader worker
    (torch then puts the worker's whole traceback in the message; its last line is the error)."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        head, sep, tail = last.partition(": ")
        text = tail if sep and "." in head and " " not in head else last
    return text
