"""The HTTP API of `gitopsd serve` (SPEC section 6), put together: routes, middleware, errors.

The routes (`routes`) are thin over the daemon's `Control`; what they need from a request
(caller, body, limits) is `calls`; the bodies they take are `bodies`. Every error is JSON
`{"error": ...}`: one handler answers the daemon's errors as `gitopsd.answers` says, and pure
ASGI middlewares refuse requests that break the request rules (`guards`: 421, 403, 415), bound
request bodies in size (`middleware`: 413) and time (`deadlines`: 408), and turn a crash into
a logged 500 that reveals nothing. Built on Starlette alone (no FastAPI): bodies and query
parameters are validated with pydantic, which keeps the idle daemon smaller
(benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from gitopsd import answers
from gitopsd.adapters.clock import SystemClock
from gitopsd.api import deadlines, deliveries, guards, streams
from gitopsd.api.auth import Tokens
from gitopsd.api.calls import Context
from gitopsd.api.middleware import CatchCrashes, CloseUnreadBodies, LimitBody, error_response
from gitopsd.api.routes import ROUTES
from gitopsd.engine.ports import Clock
from gitopsd.errors import GitopsdError
from gitopsd.runtime.control import Control


def create_app(
    control: Control,
    *,
    tokens: Tokens,
    webhook_secret: bytes | None,
    rules: guards.RequestRules,
    max_body: int = 1_048_576,
    body_timeout: float = 30.0,
    max_connections: int = 1000,
    clock: Clock | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The API over `control`; only SPEC section 6's routes are served (and `extra_routes`:
    the dashboard's, guarded by the same middleware), to requests that keep `rules`
    (`guards`) and send their body within `body_timeout` seconds. Event streams hold at most
    a share of `max_connections` (`streams`)."""
    app = Starlette(
        routes=[*ROUTES, *extra_routes],
        middleware=[
            Middleware(CloseUnreadBodies),
            Middleware(CatchCrashes),
            Middleware(guards.GuardRequests, rules=rules),
            Middleware(deadlines.BodyDeadline, seconds=body_timeout),
            Middleware(LimitBody, max_body=max_body),
        ],
        exception_handlers={
            HTTPException: _http_error,
            GitopsdError: _gitopsd_error,
        },
    )
    recent = deliveries.RecentDeliveries(clock or SystemClock())
    app.state.streams = streams.Streams(max_connections)
    app.state.gitopsd = Context(control, tokens, webhook_secret, recent)
    return app


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Raised by the routes above, and by the router for unknown routes and methods."""
    assert isinstance(exc, HTTPException)
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such route: {request.url.path}"
    elif exc.status_code == 405 and message == "Method Not Allowed":
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, message, exc.headers)


async def _gitopsd_error(request: Request, exc: Exception) -> JSONResponse:
    """The daemon's errors, answered as `answers.http_answer` says; one it has no answer
    for is the server's fault, raised on to `CatchCrashes` (a logged, opaque 500)."""
    assert isinstance(exc, GitopsdError)
    answer = answers.http_answer(exc)
    if answer is None:
        raise exc
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
