"""Closing gently a connection whose client still sends a body (api/connections.py)."""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field
from typing import Any, cast

import h11

from gitopsd.api.connections import HeaderDeadlineProtocol, Lingering


@dataclass
class ResetTransport:
    """A transport whose client reset the connection: ending our side fails."""

    closed: bool = False
    calls: list[str] = field(default_factory=list)

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.calls.append("write_eof")
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")

    def close(self) -> None:
        self.calls.append("close")
        self.closed = True


@dataclass
class SendingBody:
    """A protocol whose client is still sending the body of the request answered."""

    conn: Any = field(default_factory=lambda: type("Conn", (), {"their_state": h11.SEND_BODY}))
    loop: Any = None


def test_a_client_gone_before_the_gentle_close_is_closed_without_an_error() -> None:
    """A 408 to a client that had already reset the connection logged a traceback from
    `write_eof` (ENOTCONN); the connection is simply closed now."""
    transport = ResetTransport()
    lingering = Lingering(
        cast(asyncio.Transport, transport), cast(HeaderDeadlineProtocol, SendingBody())
    )
    lingering.close()
    assert transport.calls == ["write_eof", "close"]
    assert lingering.is_closing()
