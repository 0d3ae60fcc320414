"""Event streams may hold only a share of the daemon's connections.

A stream (a dashboard page's `/events`, a run's log stream) keeps its connection for as long
as its client likes, and past `max_connections` open connections uvicorn answers 503 to every
request. Unbounded, a few hundred browser tabs, or one client opening streams in a loop,
would leave `/healthz`, `/metrics` and the API answering 503. So streams hold at most `SHARE`
of the connections; past it a new stream is refused (TooManyStreamsError: 503 with
Retry-After) and the other connections stay for everything else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import cast

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gitopsd.errors import TooManyStreamsError

SHARE = 0.8
RETRY_AFTER = 10.0


class Streams:
    """The event streams open now, at most `limit` of them (a share of `max_connections`).

    Counted on the event loop only (a stream starts and ends there), so no lock is needed."""

    def __init__(self, max_connections: int) -> None:
        self.limit = max(1, int(max_connections * SHARE))
        self.open = 0

    def response(
        self, content: AsyncIterator[str], *, headers: Mapping[str, str]
    ) -> StreamingResponse:
        """`content` as `text/event-stream`, counted until the response ends however it ends
        (the run ended, the client left, the daemon stops); refused past the limit."""
        if self.open >= self.limit:
            raise TooManyStreamsError(
                f"{self.open} event streams are open, as many as the daemon serves at once:"
                " try again later",
                retry_after=RETRY_AFTER,
            )
        self.open += 1
        return _Counted(self, content, media_type="text/event-stream", headers=dict(headers))


class _Counted(StreamingResponse):
    """A streaming response that gives its place back when it ends."""

    def __init__(self, streams: Streams, content: AsyncIterator[str], **options: object) -> None:
        super().__init__(content, **options)  # type: ignore[arg-type]
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._streams.open -= 1


def of(request: Request) -> Streams:
    """The app's streams (`api.app.create_app` sets them)."""
    return cast(Streams, request.app.state.streams)
