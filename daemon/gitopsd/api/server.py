"""Serve the API app with uvicorn until SIGTERM or SIGINT; the only module importing uvicorn.

uvicorn handles the signal itself (stop accepting, finish open requests) and afterwards
re-raises it against the handler that was installed before it started. `serve` installs
its own handler first, so that re-raise lands in `on_signal` instead of killing the process
with the default action: the daemon still has its runs to wind down, and then exits 0.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.applications import Starlette

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def serve(app: Starlette, *, host: str, port: int, on_signal: Callable[[int], None]) -> None:
    """Run the HTTP server in this (main) thread until a stop signal."""

    def noted(signum: int, _frame: FrameType | None) -> None:
        on_signal(signum)

    for signum in SIGNALS:
        signal.signal(signum, noted)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # gitopsd's handler and format (text or JSON lines)
        lifespan="off",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    uvicorn.Server(config).run()
