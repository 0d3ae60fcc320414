"""The daemon's log lines: human text by default, JSON lines for log shippers.

Every line written while a run is under way carries the run's id and environment, whichever
thread writes it: the worker sets them in a context variable (copied into the threads that
apply components in parallel), and run events pass them explicitly. Lines outside a run
carry neither.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_RUN: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "gitopsd_run", default=(None, None)
)
FORMATS = ("text", "json")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def run_context(*, environment: str | None, run_id: str | None) -> Iterator[None]:
    """Tag every log line of this thread (and of contexts copied from it) with the run."""
    token = _RUN.set((environment, run_id))
    try:
        yield
    finally:
        _RUN.reset(token)


class _RunFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        environment, run_id = _RUN.get()
        if getattr(record, "environment", None) is None:
            record.environment = environment
        if getattr(record, "run_id", None) is None:
            record.run_id = run_id
        return True


class TextFormatter(logging.Formatter):
    """`2026-11-30T21:32:24Z INFO  gitopsd.daemon [dev 20261130T213224-3f2a9c] message`."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        tags = " ".join(t for t in (record.environment, record.run_id) if t)  # type: ignore[attr-defined]
        where = f" [{tags}]" if tags else ""
        line = f"{at} {record.levelname:<5} {record.name}{where} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, run fields and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and value is not None:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure(*, log_format: str = "text", level: int = logging.INFO) -> None:
    """Send gitopsd's (and the web server's) log lines to stderr in `log_format`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_RunFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs each request's URL at INFO, and a notification's webhook URL is a secret
    for noisy in ("apscheduler", "watchdog", "git", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
