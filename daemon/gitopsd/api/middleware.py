"""The API's pure ASGI middleware: bodies bounded in size, connections kept in step, crashes
answered without a word of what crashed.

They sit outside the routes (and the dashboard's pages), so a refusal costs no route code
and no parsing: `LimitBody` answers 413 before or while a body streams in,
`CloseUnreadBodies` says `Connection: close` when an answer leaves a body unread, and
`CatchCrashes` turns an unexpected exception into a logged, opaque 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Every error of the API is JSON `{"error": ...}`."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# not in gitopsd.errors: raised inside ASGI `receive`, where only HTTPExceptions are answered
class BodyTooLargeError(HTTPException):
    """Raised while a body streams in; Starlette answers an HTTPException from `receive`."""

    def __init__(self, max_body: int) -> None:
        super().__init__(413, f"request body is larger than {max_body} bytes")


class LimitBody:
    """Refuse bodies over `max_body` bytes: at once by Content-Length, else while counting.

    A chunked body declares no length, so the bytes are counted as the route reads them and
    the read fails past the limit; the route never sees more than `max_body` bytes.
    """

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            too_large = BodyTooLargeError(self.max_body)
            await error_response(413, too_large.detail)(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLargeError(self.max_body)
            return message

        return receive_counted


class CloseUnreadBodies:
    """Say `Connection: close` on a response sent before the request's body was read.

    A refusal (401, 403, 413, 415, 421...) may answer while the client is still sending; the
    server then closes the connection rather than read a body nobody wants. Without the
    header, a client keeping the connection alive would send its next request into a closed
    socket; with it, the client knows to open a new one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = not _has_body(scope)

        async def receive_noted() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_read = True
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_read:
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive_noted, send_closing)


class CatchCrashes:
    """Answer an unexpected exception with a bare 500 and log it here, with its request.

    Starlette's own handler for `Exception` would re-raise after answering, so the crash
    would be logged twice (and TestClient would raise it); this stops it where it is logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            if started:
                raise  # too late to answer: the server logs it and drops the connection
            logger.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            await error_response(500, "internal error")(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    """Whether the request's head announces a body (a length over 0, or chunks)."""
    names = {name for name, _ in scope.get("headers", ())}
    return b"transfer-encoding" in names or bool(_content_length(scope))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
