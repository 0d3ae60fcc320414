"""How long a client may take to send a request head, at the connection (uvicorn's protocol).

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) and the number of
connections (`limit_concurrency`, 503 past it), but a client that opens a connection and sends
its headers a byte at a time (slowloris) holds the connection for as long as it likes. This
h11 protocol gives every request head `header_timeout` seconds, from the connection's start or
from the request's first byte, and then closes the connection; and once the answer is sent it
closes a connection whose client is still sending a body nobody read. The body of a request a
route does read is bounded by `deadlines.BodyDeadline` (408). `server.serve` passes the class
to uvicorn as its `http` protocol.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head is too slow."""

    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a head still incomplete: the deadline runs since its first byte
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY:  # answered before the body came: stop it
            self.transport.close()
            return
        super().on_response_complete()

    def _arm(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            logger.debug("closed a connection: no request head within %ss", self.header_timeout)
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class with its deadline, as uvicorn wants a class (it makes one a
    connection)."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": seconds})
