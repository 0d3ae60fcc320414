"""Serve the API app with uvicorn until SIGTERM or SIGINT; with `connections`, the only modules
importing uvicorn.

uvicorn handles the signal itself (stop accepting, finish open requests) and afterwards
re-raises it against the handler that was installed before it started. `serve` installs
its own handler first, so that re-raise lands in `on_signal` instead of killing the process
with the default action: the daemon still has its runs to wind down, and then exits 0.

Slow and numerous clients are bounded here: a request head must arrive within
`header_timeout` seconds (`connections`), and past `max_connections` open connections a
request is answered 503 at once, so a flood of slow clients cannot hold the daemon.

It serves on sockets bound beforehand (`listening.listen`), so that a taken port stops
`gitopsd serve` before any work begins.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from gitopsd.api import connections

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Limits:
    """What one client may hold: seconds to send a request head, and open connections."""

    header_timeout: float = 10.0
    max_connections: int = 1000


def serve(
    app: Starlette,
    *,
    host: str,
    port: int,
    sockets: list[socket.socket],
    on_signal: Callable[[int], None],
    limits: Limits | None = None,
    on_stopping: Callable[[], None] = lambda: None,
) -> None:
    """Run the HTTP server on `sockets` (from `listening.listen`) in this (main) thread until a stop
    signal; `host` and `port` are what its start message shows. `on_stopping` is called as the
    server begins to stop, so that endless responses (the dashboard's event streams) end
    rather than hold the graceful stop for its whole timeout."""

    def noted(signum: int, _frame: FrameType | None) -> None:
        on_signal(signum)

    for signum in SIGNALS:
        signal.signal(signum, noted)
    bounds = limits or Limits()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # gitopsd's handler and format (text or JSON lines)
        lifespan="off",
        timeout_graceful_shutdown=10,
        server_header=False,
        http=connections.with_header_timeout(bounds.header_timeout),
        limit_concurrency=bounds.max_connections,
    )
    _Server(config, on_stopping).run(sockets=sockets)


class _Server(uvicorn.Server):
    """uvicorn's server, telling `on_stopping` when a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, on_stopping: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stopping = on_stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._on_stopping()
