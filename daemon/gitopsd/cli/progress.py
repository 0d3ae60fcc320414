"""Progress of long command-line work (apply, destroy, promote, rollback, drift) on a terminal.

The run engine logs every event of a run (`gitopsd.runs`: a component applied, a gate
passed, a retry) and every other audit event (`gitopsd.audit`: a promotion decision, an
approval, a drift check); on a terminal these lines go to stderr as the work happens, so an
apply of many components is not silent for minutes. When stderr is not a terminal (a pipe,
a CI log captured to a file) nothing is added: scripts see only the command's result.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

LOGGERS = ("gitopsd.runs", "gitopsd.audit")


class _Progress(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        return f"  [{time.monotonic() - self._started:6.1f}s] {record.getMessage()}"


@contextlib.contextmanager
def shown(*, enabled: bool | None = None) -> Iterator[None]:
    """Print run and promotion events to stderr while inside, if stderr is a terminal."""
    if not (sys.stderr.isatty() if enabled is None else enabled):
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Progress())
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
