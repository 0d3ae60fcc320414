"""How long a client may take to send a request body: 408 past `seconds` from the request.

A body sent at a byte a second would otherwise hold its route (and a worker of the threadpool
behind it) for as long as the client likes. Each read of the body waits only for what is left
of the deadline; past it the route's read raises an HTTPException, answered by the API's
handler as 408 `{"error"}` with `Connection: close` so the connection ends with it. The head of
a request is bounded at the connection instead (`connections`).
"""

from __future__ import annotations

import time

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


# not in gitopsd.errors: raised inside ASGI `receive`, where only HTTPExceptions are answered
class BodyTooSlowError(HTTPException):
    """Raised by `receive` when the body is not complete in time (408)."""

    def __init__(self, seconds: float) -> None:
        message = f"the request body did not arrive within {seconds:g}s"
        super().__init__(408, message, headers={"Connection": "close"})


class BodyDeadline:
    """Pure ASGI middleware bounding the time to read a request's body."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._bounded(receive), send)

    def _bounded(self, receive: Receive) -> Receive:
        deadline = time.monotonic() + self.seconds
        complete = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:  # the body is in: later reads wait for a disconnect, unbounded
                return await receive()
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                message = await receive()
                complete = not message.get("more_body", False)
                return message
            raise BodyTooSlowError(self.seconds)

        return receive_in_time
