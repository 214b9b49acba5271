"""Progress bars that stay readable in log files.

On a terminal: a normal tqdm bar. Anywhere else (a log file, a pipe, a Kaggle session): no
carriage returns; one line each time another `log_every` fraction of the work is done (plus the
last one), so a 20-epoch run leaves a few dozen readable lines instead of a flood.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


class _LineWriter:
    """The log stream, minus the bare newlines tqdm writes around its redraws."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        if text.strip():
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


class LogBar(tqdm):
    """A tqdm that prints whole lines at fixed fractions of the total instead of redrawing."""

    def __init__(self, *args: Any, log_every: float = 0.1, **kwargs: Any):
        self._log_every = log_every
        self._logged_bucket = -1
        kwargs.setdefault("mininterval", 0.0)
        kwargs.setdefault("ascii", True)
        kwargs["file"] = _LineWriter(kwargs.get("file") or sys.stderr)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self.total:
            bucket = int(self.n / self.total / self._log_every)
            last = self.n >= self.total
        else:
            bucket, last = self.n // 100, False
        if bucket == self._logged_bucket or (bucket == 0 and not last):
            return True  # nothing new to report (and no line before the first step of work)
        self._logged_bucket = bucket
        self.fp.write((msg or self.__str__()).strip() + "\n")
        self.fp.flush()
        return True


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str = "",
    total: int | None = None,
    disable: bool = False,
    unit: str = "it",
    leave: bool = True,
    log_every: float = 0.1,
    file=None,
) -> tqdm:
    """tqdm on a terminal, LogBar (one line per `log_every` of the total) elsewhere; transient bars
    (`leave=False`, e.g. validation) show on a terminal only."""
    stream = file if file is not None else sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    if interactive:
        return tqdm(iterable, desc=desc, total=total, disable=disable, unit=unit, leave=leave, mininterval=0.5, file=stream)
    return LogBar(
        iterable, desc=desc, total=total, disable=disable or not leave, unit=unit, leave=leave, log_every=log_every, file=stream
    )
