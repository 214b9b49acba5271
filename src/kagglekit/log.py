"""The one `logging` logger of kagglekit: `[kagglekit] message` lines, info to stdout, warnings to stderr.

    from kagglekit.log import logger
    logger.info("epoch 3: ...")

It configures itself on import (once), so the library logs the same from the CLI, from a Kaggle
kernel script that calls it directly, and under pytest. It does not propagate to the root logger:
an application's own logging setup neither duplicates nor swallows its lines; to send them
elsewhere, add a handler to `logging.getLogger("kagglekit")`.
"""

from __future__ import annotations

import logging
import sys

PREFIX = "[kagglekit] "


class ConsoleHandler(logging.StreamHandler):
    """Writes to the current sys.stdout (sys.stderr from WARNING up), looked up per record, so
    redirected streams (pytest's capsys, contextlib.redirect_stdout) see every line."""

    def __init__(self):
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout  # under the handler's lock
        super().emit(record)  # flushes


def _configure(log: logging.Logger) -> logging.Logger:
    if not any(h.get_name() == "kagglekit-console" for h in log.handlers):  # once, also across reloads
        handler = ConsoleHandler()
        handler.set_name("kagglekit-console")
        handler.setFormatter(logging.Formatter(PREFIX + "%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


logger = _configure(logging.getLogger("kagglekit"))
