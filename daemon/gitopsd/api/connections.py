"""How long a client may take to send a request head, at the connection (uvicorn's protocol).

uvicorn bounds an idle keep-alive connection (`timeout_keep_alive`) and the number of
connections (`limit_concurrency`, 503 past it), but a client that opens a connection and sends
its headers a byte at a time (slowloris) holds the connection for as long as it likes. This
h11 protocol gives every request head `header_timeout` seconds, from the connection's start or
from the request's first byte, and then closes the connection; and once the answer is sent it
closes a connection whose client is still sending a body nobody read: gently (`Lingering`),
since closing a socket with unread data resets it and the client may lose the answer. The
body of a request a route does read is bounded by `deadlines.BodyDeadline` (408). When the
server stops, responses still streaming end at once rather than hold the stop.
`server.serve` passes the class to uvicorn as its `http` protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)
INVALID_HEAD = (
    "its request line or headers cannot be read (HTTP/1.1, RFC 9112: one Host header, a"
    " Content-Length of digits, each header line NAME: VALUE)"
)
STREAM_END_GRACE = 0.5  # seconds a streaming response has to end once the server stops
LINGER = 2.0  # seconds to discard an unwanted body after answering, before closing anyway


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head is too slow."""

    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = Lingering(transport, self)  # type: ignore[assignment]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # answered already: the rest of the body is discarded
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a head still incomplete: the deadline runs since its first byte
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request head h11 cannot read (a malformed line, two `Host` headers, a negative
        `Content-Length`): answered as every error of the API is, in JSON, rather than in
        uvicorn's text; the connection is closed, since where the next request starts is
        not known."""
        body = json.dumps({"error": f"invalid HTTP request: {INVALID_HEAD}"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()

    def shutdown(self) -> None:
        """The server stops: a response still streaming is given `STREAM_END_GRACE` seconds
        to end by itself (the dashboard's event streams end as the stop begins, properly, so
        the page knows it was not cut), then is cut, as if its client had left (a run's log
        events), rather than holding the stop for the whole graceful period (an EventSource
        reconnects by itself, with its `Last-Event-ID`, once gitopsd is back)."""
        super().shutdown()  # a streaming response's connection closes as it ends
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.loop.call_later(STREAM_END_GRACE, self._cut, cycle)

    def _cut(self, cycle: object) -> None:
        if self.cycle is cycle and not self.transport.is_closing():
            self.transport.close()

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


class Lingering:
    """The connection's transport, closing it gently while the client still sends a body.

    Closing a socket whose peer is still sending makes the kernel answer with a reset, which
    can destroy the response the client has not read yet. So, when the answer went out before
    the body was read, our side is ended first (the client reads the response, then the end)
    and what still arrives is discarded, for at most `LINGER` seconds, then it is closed.
    """

    def __init__(self, transport: asyncio.Transport, protocol: HeaderDeadlineProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._lingering = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._lingering or self._transport.is_closing()

    def close(self) -> None:
        if self._lingering:
            return  # the timer closes it
        if not self._still_sending() or not self._transport.can_write_eof():
            self._transport.close()
            return
        try:
            self._transport.write_eof()
        except OSError:  # the client reset the connection meanwhile: nobody is left to read
            self._transport.close()
            return
        self._lingering = True
        self._transport.resume_reading()
        self._protocol.loop.call_later(LINGER, self._transport.close)

    def _still_sending(self) -> bool:
        return not self._transport.is_closing() and self._protocol.conn.their_state is h11.SEND_BODY


def with_header_timeout(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class with its deadline, as uvicorn wants a class (it makes one a
    connection)."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": seconds})
